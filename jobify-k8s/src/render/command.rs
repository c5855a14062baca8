//! What a command container runs: a `podSpec` container's `command` and `args` become the
//! script the agent runs (`BUILDKITE_COMMAND`), the way agent-stack-k8s' *interposers* turn
//! them into one, and the container itself runs `buildkite-agent kubernetes-bootstrap`.
//!
//! | interposer | `command: ["a", "b c"]`, `args: ["d e"]` becomes |
//! |---|---|
//! | `buildkite` (default) | `a` ⏎ `b c 'd e'`: command entries are lines, args are appended to the last line, shell-quoted |
//! | `vector` | `a 'b c' 'd e'`: one command, as Kubernetes reads command+args, shell-quoted |
//! | `legacy` | `a b c d e`: joined with spaces, nothing quoted |
//!
//! A container without `command` runs the step's own command; its `args` are then ignored,
//! as in agent-stack-k8s.

use serde::Deserialize;

/// How a container's `command` and `args` become the job's script (`commandParams.interposer`
/// of the plugin, `kubernetes.default_command_params.interposer` of the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interposer {
    /// `command` entries are lines of a script; `args` are shell-quoted onto the last line.
    #[default]
    Buildkite,
    /// `command` and `args` are one command line, each word shell-quoted.
    Vector,
    /// `command` and `args` joined with spaces, unquoted (agent-stack-k8s' old default, and
    /// what jobify did before it had interposers).
    Legacy,
}

impl Interposer {
    /// Every interposer, by its name.
    pub const ALL: [(&'static str, Interposer); 3] = [
        ("buildkite", Interposer::Buildkite),
        ("vector", Interposer::Vector),
        ("legacy", Interposer::Legacy),
    ];

    /// The interposer called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, interposer)| *interposer)
    }

    /// The accepted names, for error messages.
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The script a container with this `command` (not empty) and `args` runs.
    pub fn script(self, command: &[String], args: &[String]) -> String {
        match self {
            Interposer::Buildkite => {
                let mut script = command.join("\n");
                if !args.is_empty() {
                    script.push(' ');
                    script.push_str(&quote_words(args));
                }
                script
            }
            Interposer::Vector => {
                let words: Vec<String> = command.iter().chain(args).cloned().collect();
                quote_words(&words)
            }
            Interposer::Legacy => {
                let words: Vec<&str> = command.iter().chain(args).map(String::as_str).collect();
                words.join(" ")
            }
        }
    }
}

/// The words as a POSIX shell reads them back: each quoted as needed, joined by spaces.
pub fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| quote_word(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Characters a backslash makes literal.
const ESCAPED: &str = "\\'\"`${[|&;<>()*?!";
/// Characters a backslash cannot make literal: a word holding one is single-quoted whole.
const NEEDS_QUOTES: &str = " \t\n";

/// One word quoted the way agent-stack-k8s' quoting library does it, so a script reads the
/// same on both: a word with whitespace in single quotes (a `'` inside as `\'` between quoted
/// runs), any other word with its shell metacharacters (and a leading `~`) backslash-escaped,
/// `''` for the empty word.
fn quote_word(word: &str) -> String {
    if word.is_empty() {
        return "''".to_owned();
    }
    if word.contains(|c| NEEDS_QUOTES.contains(c)) {
        return word
            .split('\'')
            .map(|run| {
                if run.is_empty() {
                    String::new()
                } else {
                    format!("'{run}'")
                }
            })
            .collect::<Vec<_>>()
            .join("\\'");
    }
    let mut quoted = String::with_capacity(word.len());
    for (index, c) in word.chars().enumerate() {
        if ESCAPED.contains(c) || (index == 0 && c == '~') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    /// agent-stack-k8s' own interposer test (`config/command_params_test.go`), row for row.
    #[test]
    fn each_interposer_makes_the_script_agent_stack_k8s_makes() {
        let command = strings(&["one", "two", "three", "four", "five six seven eight"]);
        let args = strings(&["nine", "ten", "eleven twelve"]);
        for (interposer, script) in [
            (
                Interposer::Buildkite,
                "one\ntwo\nthree\nfour\nfive six seven eight nine ten 'eleven twelve'",
            ),
            (
                Interposer::Vector,
                "one two three four 'five six seven eight' nine ten 'eleven twelve'",
            ),
            (
                Interposer::Legacy,
                "one two three four five six seven eight nine ten eleven twelve",
            ),
        ] {
            assert_eq!(interposer.script(&command, &args), script, "{interposer:?}");
        }
    }

    #[test]
    fn words_are_quoted_only_as_much_as_the_shell_needs() {
        for (word, quoted) in [
            ("plain", "plain"),
            ("", "''"),
            ("hello world", "'hello world'"),
            ("it's here", "'it'\\''s here'"),
            ("'lead space", "\\''lead space'"),
            ("$HOME", "\\$HOME"),
            ("a;b", "a\\;b"),
            ("~/x", "\\~/x"),
            ("a~b", "a~b"),
            ("key=value#1", "key=value#1"),
            ("line\nbreak", "'line\nbreak'"),
        ] {
            assert_eq!(quote_word(word), quoted, "{word:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for (name, interposer) in Interposer::ALL {
            assert_eq!(Interposer::from_name(name), Some(interposer));
        }
        assert_eq!(Interposer::from_name("Buildkite"), None);
        assert_eq!(Interposer::names(), "buildkite, vector, legacy");
    }
}
