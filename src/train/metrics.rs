//! Classification metrics: accuracy, top-5, per-class precision and recall, confusion matrix.

/// `matrix[true][predicted]` counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub classes: Vec<String>,
    pub matrix: Vec<Vec<usize>>,
    pub accuracy: f64,
    /// Share of samples whose label is among the 5 highest logits (k >= 5 only).
    pub top5: Option<f64>,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub count: usize,
}

impl Metrics {
    /// From logits `[n, k]` and labels.
    pub fn from_logits(classes: &[String], logits: &[f32], labels: &[usize]) -> Metrics {
        let k = classes.len();
        let mut matrix = vec![vec![0usize; k]; k];
        let mut top5 = 0usize;
        for (row, &label) in logits.chunks(k).zip(labels) {
            let pred = (0..k).fold(0, |a, c| if row[c] > row[a] { c } else { a });
            matrix[label][pred] += 1;
            let higher = row.iter().filter(|&&v| v > row[label]).count();
            top5 += (higher < 5) as usize;
        }
        let n = labels.len();
        let correct: usize = (0..k).map(|c| matrix[c][c]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Metrics {
            classes: classes.to_vec(),
            accuracy: ratio(correct, n),
            top5: (k >= 5).then(|| ratio(top5, n)),
            precision: (0..k)
                .map(|c| ratio(matrix[c][c], (0..k).map(|t| matrix[t][c]).sum()))
                .collect(),
            recall: (0..k)
                .map(|c| ratio(matrix[c][c], matrix[c].iter().sum()))
                .collect(),
            matrix,
            count: n,
        }
    }

    /// A plain-text report: accuracy, per-class precision/recall, confusion matrix.
    pub fn report(&self) -> String {
        let mut s = format!(
            "accuracy {:.2}% on {} images",
            100.0 * self.accuracy,
            self.count
        );
        if let Some(t) = self.top5 {
            s += &format!(", top-5 {:.2}%", 100.0 * t);
        }
        let width = self
            .classes
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(5)
            .clamp(5, 24)
            + 4;
        s += &format!(
            "\n{:<width$} {:>9} {:>9} {:>7}\n",
            "class", "precision", "recall", "images"
        );
        for (c, name) in self.classes.iter().enumerate() {
            s += &format!(
                "{:<width$} {:>8.1}% {:>8.1}% {:>7}\n",
                name,
                100.0 * self.precision[c],
                100.0 * self.recall[c],
                self.matrix[c].iter().sum::<usize>()
            );
        }
        s += &format!(
            "confusion matrix (rows: true class, columns: predicted)\n{:<width$}",
            ""
        );
        for c in 0..self.classes.len() {
            s += &format!(" {c:>5}");
        }
        s.push('\n');
        for (c, name) in self.classes.iter().enumerate() {
            s += &format!("{:<width$}", format!("{c:>3} {name}"));
            for v in &self.matrix[c] {
                s += &format!(" {v:>5}");
            }
            s.push('\n');
        }
        s
    }
}
