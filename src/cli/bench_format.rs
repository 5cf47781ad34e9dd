//! How the benchmarks report: a table for reading, JSON for scripts (`--format`).

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Json,
}
