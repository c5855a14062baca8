//! [`Cause`]: the error underneath a port error, kept for [`Error::source`].

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The error a port error came from (a `kube::Error`, an HTTP error), kept so that callers
/// can walk [`Error::source`] and downcast it, while the port error stays cheap to clone.
///
/// A `Cause` shows and chains as the error it holds. Two causes are equal when they say the
/// same thing: port errors compare by what they report, so scheduler tests can compare
/// effects that carry them.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    /// Keeps `error` as a cause.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }

    /// The error held, as itself.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The error held, if it is a `T`.
    pub fn downcast_ref<T: Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_cause_shows_downcasts_and_chains_as_the_error_it_holds() {
        let cause = Cause::new(Outer(std::io::Error::other("inner")));
        assert_eq!(cause.to_string(), "outer");
        assert!(cause.downcast_ref::<Outer>().is_some());
        assert!(cause.downcast_ref::<std::io::Error>().is_none());
        assert_eq!(
            cause.source().map(ToString::to_string).as_deref(),
            Some("inner")
        );
        assert!(cause.get().is::<Outer>());
    }

    #[test]
    fn causes_are_equal_when_they_say_the_same() {
        let a = Cause::new(std::io::Error::other("x"));
        assert_eq!(a, a.clone());
        assert_eq!(a, Cause::new(std::io::Error::other("x")));
        assert_ne!(a, Cause::new(std::io::Error::other("y")));
    }
}
