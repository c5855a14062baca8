//! Deterministic fault injection for the simulators: the same seed gives the same faults for
//! the same sequence of requests.

use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Fault rates, each a probability in `0.0..=1.0` per request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Seed of the random sequence.
    pub seed: u64,
    /// Answer HTTP 500 (or 503).
    pub server_error: f64,
    /// Hold the request for [`FaultConfig::timeout_delay`] before answering (clients time out).
    pub timeout: f64,
    /// How long a "timeout" holds the request.
    pub timeout_delay: Duration,
    /// Answer HTTP 200 with a GraphQL `errors` array (Buildkite only).
    pub graphql_error: f64,
    /// Answer HTTP 200 with a body that is not valid JSON.
    pub malformed: f64,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        FaultConfig::default()
    }

    /// Every kind of fault at `rate` each, seeded.
    pub fn chaos(seed: u64, rate: f64) -> Self {
        FaultConfig {
            seed,
            server_error: rate,
            timeout: rate,
            timeout_delay: Duration::from_secs(30),
            graphql_error: rate,
            malformed: rate,
        }
    }
}

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer 500.
    ServerError,
    /// Hold the request this long, then answer normally.
    Timeout(Duration),
    /// Answer 200 with a GraphQL error.
    GraphqlError,
    /// Answer 200 with malformed JSON.
    Malformed,
}

/// A seeded source of faults, shared by a simulator's handlers.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    /// Faults drawn from `config`.
    pub fn new(config: FaultConfig) -> Self {
        let rng = Mutex::new(ChaCha8Rng::seed_from_u64(config.seed));
        Faults { config, rng }
    }

    /// Draws the fault (if any) for the next request. `graphql` says whether the endpoint
    /// speaks GraphQL (only then can it answer with a GraphQL error).
    pub fn next(&self, graphql: bool) -> Option<Fault> {
        let c = &self.config;
        if c.server_error + c.timeout + c.graphql_error + c.malformed <= 0.0 {
            return None;
        }
        // A poisoned lock only means another handler panicked mid-draw; the RNG state is
        // still a valid RNG state.
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let roll: f64 = rng.random();
        let mut edge = c.server_error;
        if roll < edge {
            return Some(Fault::ServerError);
        }
        edge += c.timeout;
        if roll < edge {
            return Some(Fault::Timeout(c.timeout_delay));
        }
        if graphql {
            edge += c.graphql_error;
            if roll < edge {
                return Some(Fault::GraphqlError);
            }
        }
        edge += c.malformed;
        if roll < edge {
            return Some(Fault::Malformed);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let a = Faults::new(FaultConfig::chaos(7, 0.1));
        let b = Faults::new(FaultConfig::chaos(7, 0.1));
        let xs: Vec<_> = (0..200).map(|_| a.next(true)).collect();
        let ys: Vec<_> = (0..200).map(|_| b.next(true)).collect();
        assert_eq!(xs, ys);
        let injected = xs.iter().filter(|f| f.is_some()).count();
        // Four kinds at 10% each: about 80 of 200; far from 0 and from 200.
        assert!((40..=120).contains(&injected), "{injected}");
    }

    #[test]
    fn no_faults_by_default() {
        let f = Faults::new(FaultConfig::none());
        assert!((0..100).all(|_| f.next(true).is_none()));
    }
}
