//! The performance goals a benchmark run is held to, each beside what the
//! run measured, printed as one table at its end: a goal is met or missed
//! by this run's own figures, never by figures remembered from another.

/// Which side of its bound a measured figure must fall on.
#[derive(Clone, Copy)]
pub(crate) enum Bound {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
}

impl Bound {
    fn holds(self, measured: f64) -> bool {
        match self {
            Bound::AtLeast(bound) => measured >= bound,
            Bound::AtMost(bound) => measured <= bound,
            Bound::Below(bound) => measured < bound,
        }
    }

    fn shown(self, unit: &str) -> String {
        let (sign, bound) = match self {
            Bound::AtLeast(bound) => ("≥", bound),
            Bound::AtMost(bound) => ("≤", bound),
            Bound::Below(bound) => ("<", bound),
        };
        format!("{sign} {bound:.2}{unit}")
    }
}

struct Goal {
    what: String,
    measured: f64,
    bound: Bound,
    unit: &'static str,
    how: String,
}

/// The goals of one run, in the order they were measured.
#[derive(Default)]
pub(crate) struct Targets(Vec<Goal>);

impl Targets {
    /// Records `what`, measured as `measured` (a ratio unless `unit` says
    /// otherwise), held to `bound`; `how` says what the figure is made of.
    pub(crate) fn add(
        &mut self,
        what: impl Into<String>,
        measured: f64,
        bound: Bound,
        unit: &'static str,
        how: impl Into<String>,
    ) {
        self.0.push(Goal {
            what: what.into(),
            measured,
            bound,
            unit,
            how: how.into(),
        });
    }

    /// The table of every goal; a figure that could not be measured (not a
    /// number) is shown as such and counts as missed.
    pub(crate) fn print(&self) {
        if self.0.is_empty() {
            return;
        }
        println!("## targets");
        println!();
        println!("| target | measured | goal | met | from |");
        println!("| --- | ---: | ---: | :---: | --- |");
        for goal in &self.0 {
            let measured = if goal.measured.is_finite() {
                format!("{:.2}{}", goal.measured, goal.unit)
            } else {
                "not measured".into()
            };
            let met = goal.measured.is_finite() && goal.bound.holds(goal.measured);
            println!(
                "| {} | {measured} | {} | {} | {} |",
                goal.what,
                goal.bound.shown(goal.unit),
                if met { "yes" } else { "no" },
                goal.how
            );
        }
        let missed = self
            .0
            .iter()
            .filter(|g| !(g.measured.is_finite() && g.bound.holds(g.measured)))
            .count();
        println!();
        println!("{} of {} targets met", self.0.len() - missed, self.0.len());
        println!();
    }
}
