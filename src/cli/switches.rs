//! Flags whose value is optional and a switch word (`--validate`, `--shader-checks`: alone,
//! on; `--validate 0`, off) take the next argument as their value only when it is a switch
//! word. clap takes any next argument, so `alexnet classify --validate good.jpg` used to read
//! the path as the flag's value and fail on it (or, for a file named `on`, validate); now the
//! path stays a path.

use std::ffi::OsString;

/// The flags with an optional switch value (`num_args = 0..=1`, `value_parser = switch`).
pub(super) const OPTIONAL_SWITCHES: [&str; 2] = ["--validate", "--shader-checks"];

/// `argv` with each optional switch that is followed by something other than a switch word
/// written as `--flag=1` (what it means alone), so that clap leaves the next argument be.
/// Nothing after `--` is touched.
pub(super) fn switch_values_only(argv: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let argv: Vec<OsString> = argv.into_iter().collect();
    let mut out = Vec::with_capacity(argv.len());
    let mut options = true;
    for (i, arg) in argv.iter().enumerate() {
        if arg == "--" {
            options = false;
        }
        let switch = options && i > 0 && OPTIONAL_SWITCHES.iter().any(|s| arg == s);
        let value_follows = argv.get(i + 1).is_some_and(|next| {
            next.to_str()
                .is_some_and(|n| alexnet_wgpu::options::parse_switch(n).is_ok())
        });
        if switch && !value_follows {
            let mut on = arg.clone();
            on.push("=1");
            out.push(on);
        } else {
            out.push(arg.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Vec<String> {
        switch_values_only(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn only_switch_words_are_taken_as_an_optional_switchs_value() {
        let same = |args: &[&str]| assert_eq!(run(args), args);
        same(&["alexnet", "classify", "--validate", "0", "a.jpg"]);
        same(&["alexnet", "classify", "--validate", "on", "a.jpg"]);
        same(&["alexnet", "classify", "--validate=no", "a.jpg"]);
        same(&["alexnet", "classify", "a.jpg", "--", "--validate", "b.jpg"]);
        assert_eq!(
            run(&["alexnet", "classify", "--validate", "good.jpg"]),
            ["alexnet", "classify", "--validate=1", "good.jpg"]
        );
        assert_eq!(
            run(&["alexnet", "classify", "--shader-checks", "--validate"]),
            ["alexnet", "classify", "--shader-checks=1", "--validate=1"]
        );
    }

    /// The list is every optional-valued switch of the command tree (a new one without it
    /// fails here).
    #[test]
    fn the_list_is_every_optional_switch() {
        use clap::CommandFactory;
        let mut found = std::collections::BTreeSet::new();
        let mut stack = vec![super::super::Cli::command()];
        while let Some(cmd) = stack.pop() {
            for a in cmd.get_arguments() {
                // An optional value defaulting to "0": a switch (`--augment [VIEWS]` has none).
                let optional = a
                    .get_num_args()
                    .is_some_and(|n| n.min_values() == 0 && n.max_values() == 1);
                if optional && a.get_long().is_some() && a.get_default_values() == ["0"] {
                    found.insert(format!("--{}", a.get_long().unwrap()));
                }
            }
            stack.extend(cmd.get_subcommands().cloned());
        }
        let listed: std::collections::BTreeSet<String> =
            OPTIONAL_SWITCHES.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, listed);
    }
}
