//! Classification metrics: accuracy, top-5, per-class precision and recall, confusion matrix.

/// `matrix[true][predicted]` counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// The confusion matrix, `matrix[true][predicted]`.
    pub matrix: Vec<Vec<usize>>,
    /// Top-1 accuracy, 0..1.
    pub accuracy: f64,
    /// Share of samples whose label is among the 5 highest logits (k >= 5 only).
    pub top5: Option<f64>,
    /// Per class: the share of its predictions that were right (0 when never predicted).
    pub precision: Vec<f64>,
    /// Per class: the share of its samples predicted as it.
    pub recall: Vec<f64>,
    /// Samples scored.
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
    ///
    /// The matrix's columns are headed by the class names, cut to the column width (at most
    /// 8 characters, the last one `…` when cut): names read better than numbers, and with up
    /// to ~20 classes the table still fits a wide terminal. Rows carry the names in full (up
    /// to 24 characters), in the same order as the columns, so a cut header is read off its
    /// row.
    pub fn report(&self) -> String {
        let mut s = format!(
            "accuracy {:.2}% on {} {}",
            100.0 * self.accuracy,
            self.count,
            plural(self.count, "image", "images")
        );
        if let Some(t) = self.top5 {
            s += &format!(", top-5 {:.2}%", 100.0 * t);
        }
        let width = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 24)
            + 2;
        s += &format!(
            "\n{:<width$} {:>9} {:>9} {:>7}\n",
            "class", "precision", "recall", "images"
        );
        for (c, name) in self.classes.iter().enumerate() {
            s += &format!(
                "{:<width$} {:>8.1}% {:>8.1}% {:>7}\n",
                cut(name, width),
                100.0 * self.precision[c],
                100.0 * self.recall[c],
                self.matrix[c].iter().sum::<usize>()
            );
        }
        // Wide enough for the largest count and (up to 8 characters) the longest name.
        let digits = self
            .matrix
            .iter()
            .flatten()
            .max()
            .map_or(1, |m| m.to_string().len());
        let col = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(1)
            .min(8)
            .max(digits)
            .max(3);
        s += &format!(
            "confusion matrix (rows: true class, columns: predicted)\n{:<width$}",
            ""
        );
        for name in &self.classes {
            s += &format!(" {:>col$}", cut(name, col));
        }
        s.push('\n');
        for (c, name) in self.classes.iter().enumerate() {
            s += &format!("{:<width$}", cut(name, width));
            for v in &self.matrix[c] {
                s += &format!(" {v:>col$}");
            }
            s.push('\n');
        }
        s
    }
}

/// `name` in at most `width` characters: cut names end in `…`.
fn cut(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The singular for 1, the plural otherwise ("1 image", "2 images").
fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}
