//! The table of figures: each beside its anchor (what SwarmKit reported)
//! and its target (what the issue asks), as ratios.

/// Whether smaller or larger is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Times, CPU shares.
    Lower,
    /// Rates.
    Higher,
}

/// One figure.
#[derive(Debug, Clone)]
pub struct Figure {
    name: String,
    measured: f64,
    unit: &'static str,
    anchor: Option<f64>,
    target: Option<f64>,
    better: Better,
}

impl Figure {
    /// A figure in `unit`; anchor and target are in the same unit.
    pub fn new(name: impl Into<String>, measured: f64, unit: &'static str, better: Better) -> Self {
        Figure {
            name: name.into(),
            measured,
            unit,
            anchor: None,
            target: None,
            better,
        }
    }

    /// What SwarmKit reported for the same thing.
    pub fn anchor(mut self, v: f64) -> Self {
        self.anchor = Some(v);
        self
    }

    /// What the issue asks for.
    pub fn target(mut self, v: f64) -> Self {
        self.target = Some(v);
        self
    }

    /// How many times better than `reference` (above 1: better).
    fn ratio(&self, reference: f64) -> f64 {
        match self.better {
            Better::Lower => reference / self.measured.max(1e-12),
            Better::Higher => self.measured / reference.max(1e-12),
        }
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Prints the figures as a markdown table.
#[allow(clippy::print_stdout, reason = "the bench reports on stdout")]
pub fn print(title: &str, figures: &[Figure]) {
    println!("\n## {title}\n");
    println!("| figure | measured | anchor | vs anchor | target | vs target | meets |");
    println!("|---|---|---|---|---|---|---|");
    for f in figures {
        let (anchor, vs_anchor) = match f.anchor {
            Some(a) => (
                format!("{} {}", num(a), f.unit),
                format!("{:.1}x", f.ratio(a)),
            ),
            None => ("-".into(), "-".into()),
        };
        let (target, vs_target, meets) = match f.target {
            Some(t) => {
                let cmp = match f.better {
                    Better::Lower => "<",
                    Better::Higher => "≥",
                };
                let ok = f.ratio(t) >= 1.0;
                (
                    format!("{cmp} {} {}", num(t), f.unit),
                    format!("{:.2}x", f.ratio(t)),
                    if ok { "yes" } else { "NO" }.to_string(),
                )
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} {} | {} | {} | {} | {} | {} |",
            f.name,
            num(f.measured),
            f.unit,
            anchor,
            vs_anchor,
            target,
            vs_target,
            meets
        );
    }
    println!("\n(ratios: above 1.0x is better than the anchor or target)");
}
