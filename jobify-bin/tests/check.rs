//! `jobify check` as a user runs it: the real binary, real files, exit codes and messages.

mod process;

use std::path::{Path, PathBuf};

use process::jobify;

fn workspace_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Runs `jobify check` on `text` written to a file; returns (exit code, stdout, stderr).
fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jobify.toml");
    std::fs::write(&path, text).expect("write config");
    run_check(&path)
}

fn run_check(path: &Path) -> (i32, String, String) {
    let output = jobify()
        .args(["check", "--config"])
        .arg(path)
        .output()
        .expect("run jobify");
    (
        output.status.code().expect("exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn example_config_passes() {
    let (code, stdout, stderr) = run_check(&workspace_file("examples/jobify.toml"));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn deploy_config_passes() {
    let (code, _, stderr) = run_check(&workspace_file("examples/deploy/jobify.toml"));
    assert_eq!(code, 0, "stderr: {stderr}");
}

#[test]
fn config_path_comes_from_jobify_config_env() {
    let output = jobify()
        .arg("check")
        .env("JOBIFY_CONFIG", workspace_file("examples/jobify.toml"))
        .output()
        .expect("run jobify");
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn unknown_key_is_located_and_the_valid_keys_named() {
    let (code, _, stderr) =
        check("organization = \"acme\"\n\n[buildkite]\npoll_intervall = \"5s\"\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":4:1: buildkite.poll_intervall: unknown field `poll_intervall`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`poll_interval`"),
        "valid keys named: {stderr}"
    );
    assert!(
        stderr.contains("4 | poll_intervall = \"5s\""),
        "offending line shown: {stderr}"
    );
}

#[test]
fn wrong_type_is_located_and_the_key_named() {
    let (code, _, stderr) = check("organization = \"acme\"\n[limits]\nmax_in_flight = \"lots\"\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":3:17: limits.max_in_flight: invalid type: string"),
        "{stderr}"
    );
}

#[test]
fn literal_token_is_refused_with_a_hint_and_not_echoed() {
    let (code, stdout, stderr) =
        check("organization = \"acme\"\n[buildkite]\napi_token = \"bkua_0123456789abcdef\"\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":3:13: buildkite.api_token: a literal secret is not allowed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("{ env = \"BUILDKITE_API_TOKEN\" }"),
        "hint: {stderr}"
    );
    assert!(
        !stderr.contains("bkua_0123456789abcdef") && !stdout.contains("bkua_"),
        "{stderr}"
    );
}

#[test]
fn bad_duration_is_located_and_says_how_to_write_one() {
    let (code, _, stderr) =
        check("organization = \"acme\"\n[kubernetes]\nttl_after_finished = \"ten minutes\"\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":3:22: kubernetes.ttl_after_finished: invalid value"),
        "{stderr}"
    );
    assert!(
        stderr.contains("expected a duration such as \"30s\", \"5m\" or \"1h 30m\""),
        "{stderr}"
    );
    // The examples in the hint are themselves valid.
    let (code, _, stderr) = check(
        "organization = \"acme\"\n[kubernetes]\nttl_after_finished = \"1h 30m\"\n\
         active_deadline = \"5m\"\ntermination_grace_period = \"30s\"\n",
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn bad_scheduler_values_are_located() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [scheduler]\n\
         launch_concurrency = 0\n\
         shutdown_grace = \"soon\"\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":4:18: scheduler.shutdown_grace: invalid value"),
        "{stderr}"
    );

    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [scheduler]\n\
         launch_concurrency = 0\n\
         cancel_check_interval = \"100ms\"\n\
         launch_concurency = 4\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":5:1: scheduler.launch_concurency: unknown field `launch_concurency`"),
        "{stderr}"
    );

    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [scheduler]\n\
         launch_concurrency = 0\n\
         cancel_check_interval = \"100ms\"\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":3:22: scheduler.launch_concurrency: must be between 1 and 1000, not 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":4:25: scheduler.cancel_check_interval: must be at least 1s"),
        "{stderr}"
    );
}

#[test]
fn semantic_errors_are_all_reported_at_once_with_positions() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [buildkite]\n\
         budget_share = 1.5\n\
         [scheduler]\n\
         lookahead_pages = 0\n\
         [[queues]]\n\
         name = \"k8s\"\n\
         max_in_flight = 0\n\
         [[policy.rules]]\n\
         queue = \"gpu\"\n\
         action = \"default\"\n\
         template = \"gpu\"\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":3:16: buildkite.budget_share: must be in (0, 1]"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":5:19: scheduler.lookahead_pages: must be between 1 and 100, not 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":8:17: queues[0].max_in_flight: is 0, so no job could ever run"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":12:12: policy.rules[0].template: template `gpu` is not defined"),
        "{stderr}"
    );
    assert!(stderr.contains("4 problems in the config file"), "{stderr}");
}

#[test]
fn a_redacted_var_that_is_not_one_pattern_is_located() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [kubernetes]\n\
         additional_redacted_vars = [\"MY_SECRET\", \"A_KEY,B_KEY\"]\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            ":3:42: kubernetes.additional_redacted_vars[1]: `A_KEY,B_KEY` is not one name \
             pattern"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("give each name or pattern its own entry"),
        "{stderr}"
    );
}

#[test]
fn a_workspace_volume_without_a_source_is_located() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [kubernetes]\n\
         workspace_mount_sub_path_expr = \"../$(POD_NAME)\"\n\
         workspace_volume = { name = \"workspace\" }\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            ":4:1: kubernetes.workspace_volume: needs exactly one volume source (found: none)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(":3:33: kubernetes.workspace_mount_sub_path_expr: `../$(POD_NAME)`"),
        "{stderr}"
    );
}

#[test]
fn a_bad_agent_config_value_is_located() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [kubernetes.agent_config]\n\
         verification_failure_behavior = \"fail\"\n\
         hooks_path = \"hooks\"\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            ":3:33: kubernetes.agent_config.verification_failure_behavior: `fail` is not one \
             of block, warn"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(":4:14: kubernetes.agent_config.hooks_path: `hooks` is not an absolute"),
        "{stderr}"
    );
}

#[test]
fn a_relative_additional_hooks_path_is_located() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [[kubernetes.agent_config.additional_hooks]]\n\
         path = \"/buildkite/org-hooks\"\n\
         volume = { name = \"org-hooks\", configMap = { name = \"org-hooks\" } }\n\
         [[kubernetes.agent_config.additional_hooks]]\n\
         path = \"more-hooks\"\n\
         volume = { name = \"more-hooks\", emptyDir = {} }\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            ":6:8: kubernetes.agent_config.additional_hooks[1].path: `more-hooks` is not an \
             absolute path"
        ),
        "{stderr}"
    );
}

#[test]
fn bad_default_checkout_params_are_located() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [kubernetes.default_checkout_params]\n\
         git_credentials_secret = { secretName = \"Git Creds\" }\n\
         [kubernetes.default_checkout_params.git_mirrors]\n\
         path = \"mirrors\"\n\
         lock_timeout = 0\n\
         volume = { name = \"workspace\", emptyDir = {} }\n",
    );
    assert_eq!(code, 2, "{stderr}");
    for wanted in [
        ":5:8: kubernetes.default_checkout_params.git_mirrors.path: `mirrors` is not an absolute \
         path",
        ":6:16: kubernetes.default_checkout_params.git_mirrors.lock_timeout: must be at least 1",
        ":7:19: kubernetes.default_checkout_params.git_mirrors.volume.name: `workspace` is the \
         name of the workspace volume",
        ":3:41: kubernetes.default_checkout_params.git_credentials_secret.secretName: `Git \
         Creds` is not a Secret name",
    ] {
        assert!(stderr.contains(wanted), "{wanted}\n{stderr}");
    }
}

#[test]
fn a_misspelt_default_checkout_param_is_located() {
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [kubernetes.default_checkout_params.git_mirrors]\n\
         lockTimeout = 30\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(":3:1"), "{stderr}");
    assert!(stderr.contains("lockTimeout"), "{stderr}");
    let (code, _, stderr) = check(
        "organization = \"acme\"\n\
         [kubernetes]\n\
         env = { BUILDKITE_GIT_CLONE_FLAGS = \"-v\" }\n\
         [kubernetes.default_checkout_params]\n\
         clone_flags = \"--depth=1\"\n",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "kubernetes.env.BUILDKITE_GIT_CLONE_FLAGS: is set by \
             [kubernetes.default_checkout_params] too"
        ),
        "{stderr}"
    );
}

#[test]
fn missing_file_exits_2_and_names_it() {
    let (code, _, stderr) = run_check(Path::new("/nonexistent/jobify.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/jobify.toml"), "{stderr}");
}

#[test]
fn version_flag_prints_the_version() {
    let output = jobify().arg("--version").output().expect("run jobify");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.trim(),
        format!("jobify {}", env!("CARGO_PKG_VERSION"))
    );
}
