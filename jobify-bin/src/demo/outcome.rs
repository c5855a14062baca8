//! Whether what the simulators show is what the scenario expects.

use super::observe::Observation;
use super::scenario::Expected;

/// How an observation compares with its expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Everything expected happened.
    Met,
    /// Not yet; what is still missing.
    Waiting(String),
    /// Something happened that must not: what.
    Wrong(String),
}

impl Verdict {
    /// Whether the expectation is met.
    pub(crate) fn is_met(&self) -> bool {
        matches!(self, Verdict::Met)
    }
}

/// Compares `observed` with `expected`.
pub(crate) fn judge(expected: &Expected, observed: &Observation) -> Verdict {
    // The Stacks source ends a job it will not run by finishing it as a stack error (exit
    // -1) where the GraphQL source cancels it: judge both alike.
    let stacks_refusal;
    let o = if observed.canceled_by_api
        && observed.state == "FINISHED"
        && observed.exit_status == Some(-1)
    {
        stacks_refusal = Observation {
            state: "CANCELED".to_owned(),
            ..observed.clone()
        };
        &stacks_refusal
    } else {
        observed
    };
    if o.acquired_count > 1 {
        return Verdict::Wrong(format!("acquired {} times", o.acquired_count));
    }
    match expected {
        Expected::Passes => ran_to(o, 0),
        Expected::Fails(status) => ran_to(o, *status),
        Expected::Skipped | Expected::NotServed => left_alone(o),
        Expected::Rejected(code) => {
            if o.job_seen {
                return Verdict::Wrong("a Job was created for it".to_owned());
            }
            refused(o, code)
        }
        Expected::CouldNotStart(code) => {
            if !o.job_seen && o.state == "CANCELED" {
                return Verdict::Wrong("cancelled without a Job ever being created".to_owned());
            }
            match refused(o, code) {
                Verdict::Met if o.job_present => {
                    Verdict::Waiting("its Job is not deleted yet".to_owned())
                }
                other => other,
            }
        }
        Expected::CancelledWhilePending => {
            if o.acquired_count > 0 {
                return Verdict::Wrong("an agent acquired it before the cancellation".to_owned());
            }
            if o.annotation.is_some() || o.canceled_by_api {
                return Verdict::Wrong(format!(
                    "jobify failed it itself: {}",
                    o.reason_message().unwrap_or_default()
                ));
            }
            match (o.state.as_str(), o.job_seen, o.job_present) {
                ("CANCELED", true, false) => Verdict::Met,
                ("CANCELED", true, true) => {
                    Verdict::Waiting("jobify has not deleted its Job yet".to_owned())
                }
                ("CANCELED", false, _) => Verdict::Wrong(
                    "cancelled before its Job existed (the demo cancels only pending pods)"
                        .to_owned(),
                ),
                (_, false, _) => Verdict::Waiting("no Job yet".to_owned()),
                _ => Verdict::Waiting(format!(
                    "{}, pod {}",
                    o.state.to_lowercase(),
                    o.pod_phase
                        .as_deref()
                        .unwrap_or("not created")
                        .to_lowercase()
                )),
            }
        }
    }
}

/// Ran in one Job and finished with `status`.
fn ran_to(o: &Observation, status: i32) -> Verdict {
    match o.state.as_str() {
        "FINISHED" if o.exit_status == Some(status) && o.acquired_count == 1 && o.job_seen => {
            Verdict::Met
        }
        "FINISHED" if !o.job_seen => {
            Verdict::Wrong("finished, but no Job of jobify's ran it".to_owned())
        }
        "FINISHED" => Verdict::Wrong(format!(
            "finished with exit {}, expected {status}",
            o.exit_status
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string())
        )),
        "CANCELED" | "CANCELING" => Verdict::Wrong(format!(
            "cancelled{}",
            o.reason_message()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        "SCHEDULED" if !o.job_seen => Verdict::Waiting("no Job yet".to_owned()),
        state => Verdict::Waiting(format!(
            "{}, pod {}",
            state.to_lowercase(),
            o.pod_phase
                .as_deref()
                .unwrap_or("not created")
                .to_lowercase()
        )),
    }
}

/// No Job, no annotation, still scheduled.
fn left_alone(o: &Observation) -> Verdict {
    if o.job_seen {
        Verdict::Wrong("a Job was created for it".to_owned())
    } else if let Some(message) = o.reason_message() {
        Verdict::Wrong(format!("annotated: {message}"))
    } else if o.state != "SCHEDULED" {
        Verdict::Wrong(format!("{}, expected scheduled", o.state.to_lowercase()))
    } else {
        Verdict::Met
    }
}

/// Annotated with `code` and cancelled by jobify, never acquired.
fn refused(o: &Observation, code: &str) -> Verdict {
    if o.acquired_count > 0 {
        return Verdict::Wrong("an agent acquired it".to_owned());
    }
    match (o.state.as_str(), o.reason_code()) {
        ("CANCELED", Some(found)) if found == code && o.canceled_by_api => Verdict::Met,
        ("CANCELED", Some(found)) if found != code => {
            Verdict::Wrong(format!("refused with {found}, expected {code}"))
        }
        ("CANCELED", None) => Verdict::Wrong("cancelled without jobify's annotation".to_owned()),
        (_, Some(found)) if found != code => {
            Verdict::Wrong(format!("annotated with {found}, expected {code}"))
        }
        ("FINISHED", _) => Verdict::Wrong("it ran".to_owned()),
        (state, _) => Verdict::Waiting(format!("{}, not refused yet", state.to_lowercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(state: &str) -> Observation {
        Observation {
            state: state.to_owned(),
            ..Observation::default()
        }
    }

    fn annotated(code: &str) -> Option<String> {
        Some(format!(
            "**jobify did not run this job.** why\n\n<sub>reason code `{code}`</sub>"
        ))
    }

    #[test]
    fn passing_job_needs_one_job_one_acquire_and_exit_zero() {
        let mut o = observed("SCHEDULED");
        assert!(matches!(judge(&Expected::Passes, &o), Verdict::Waiting(_)));
        o.state = "FINISHED".into();
        o.exit_status = Some(0);
        o.acquired_count = 1;
        o.job_seen = true;
        assert_eq!(judge(&Expected::Passes, &o), Verdict::Met);
        o.acquired_count = 2;
        assert!(matches!(judge(&Expected::Passes, &o), Verdict::Wrong(_)));
        o.acquired_count = 1;
        o.exit_status = Some(1);
        assert!(matches!(judge(&Expected::Passes, &o), Verdict::Wrong(_)));
        assert_eq!(judge(&Expected::Fails(1), &o), Verdict::Met);
    }

    #[test]
    fn skipped_job_must_stay_untouched() {
        let o = observed("SCHEDULED");
        assert_eq!(judge(&Expected::Skipped, &o), Verdict::Met);
        let with_job = Observation {
            job_seen: true,
            ..o.clone()
        };
        assert!(matches!(
            judge(&Expected::Skipped, &with_job),
            Verdict::Wrong(_)
        ));
        let annotated = Observation {
            annotation: annotated("rule_matched"),
            ..o
        };
        assert!(matches!(
            judge(&Expected::NotServed, &annotated),
            Verdict::Wrong(_)
        ));
    }

    #[test]
    fn rejection_needs_the_right_code_and_no_job() {
        let mut o = observed("CANCELED");
        o.canceled_by_api = true;
        o.annotation = annotated("guard_denied");
        assert_eq!(judge(&Expected::Rejected("guard_denied"), &o), Verdict::Met);
        assert!(matches!(
            judge(&Expected::Rejected("rule_matched"), &o),
            Verdict::Wrong(_)
        ));
        o.job_seen = true;
        assert!(matches!(
            judge(&Expected::Rejected("guard_denied"), &o),
            Verdict::Wrong(_)
        ));
    }

    #[test]
    fn could_not_start_waits_for_the_job_to_be_deleted() {
        let mut o = observed("CANCELED");
        o.canceled_by_api = true;
        o.annotation = annotated("image_pull_failed");
        o.job_seen = true;
        o.job_present = true;
        let expected = Expected::CouldNotStart("image_pull_failed");
        assert!(matches!(judge(&expected, &o), Verdict::Waiting(_)));
        o.job_present = false;
        assert_eq!(judge(&expected, &o), Verdict::Met);
    }

    #[test]
    fn cancelled_pending_job_needs_its_job_deleted_and_no_acquire() {
        let mut o = observed("SCHEDULED");
        o.job_seen = true;
        o.job_present = true;
        o.pod_phase = Some("Pending".into());
        let expected = Expected::CancelledWhilePending;
        assert!(matches!(judge(&expected, &o), Verdict::Waiting(_)));
        o.state = "CANCELED".into();
        assert!(matches!(judge(&expected, &o), Verdict::Waiting(_)));
        o.job_present = false;
        assert_eq!(judge(&expected, &o), Verdict::Met);
        o.acquired_count = 1;
        assert!(matches!(judge(&expected, &o), Verdict::Wrong(_)));
    }
}
