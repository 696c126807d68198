//! `skiff build` end to end: a corpus of small Dockerfiles written here, one concern each, built
//! over a busybox image made with `skiff import` in a private `--root`; the results are checked
//! through `skiff image inspect` and by running the image (file contents, owners, modes).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use serde_json::Value;
use skiff_tests::{stderr, stdout, EngineEnv};

struct Env(EngineEnv);

impl std::ops::Deref for Env {
    type Target = EngineEnv;
    fn deref(&self) -> &EngineEnv {
        &self.0
    }
}

impl Env {
    fn new(name: &str) -> Env {
        Env(EngineEnv::new(name, |_| {}))
    }

    /// A context directory with `files` (path, contents).
    fn ctx(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.dir.path().join("ctx").join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (p, c) in files {
            let f = d.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        }
        d
    }

    fn build(&self, ctx: &std::path::Path, args: &[&str]) -> Output {
        let mut a = vec!["build", "--progress=plain"];
        a.extend_from_slice(args);
        a.push(ctx.to_str().unwrap());
        self.sk(&a)
    }

    fn build_ok(&self, ctx: &std::path::Path, args: &[&str]) -> String {
        let o = self.build(ctx, args);
        assert!(
            o.status.success(),
            "build {args:?} failed ({}): {}{}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        stderr(&o)
    }

    fn inspect(&self, image: &str) -> Value {
        let out = self.ok(&["image", "inspect", image]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }

    fn sh(&self, image: &str, cmd: &str) -> String {
        self.ok(&["run", "--rm", image, "sh", "-c", cmd])
    }

    /// The `created_by` of each history entry.
    fn history(&self, image: &str) -> Vec<String> {
        let id = self.inspect(image)["Id"].as_str().unwrap().to_string();
        let out = self.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", &id]);
        let mut v: Vec<String> = out.lines().map(String::from).collect();
        v.reverse();
        v
    }
}

#[test]
fn config_instructions_and_expansion() {
    let env = Env::new("build-config");
    let df = r#"
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS base
ARG V
ARG W=${V:-fallback}
ENV A=1 B="two words" \
    C=${W}
ENV LEGACY value with spaces
LABEL org.test.v="${V:+set}" "quoted key"=x
EXPOSE 80 53/udp
VOLUME ["/data"]
USER nobody
WORKDIR /srv
WORKDIR sub
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
MAINTAINER someone
ENTRYPOINT echo entry
CMD ["x"]
ARG TARGETARCH
ARG TARGETPLATFORM
ENV ARCH=${TARGETARCH} PLAT=${TARGETPLATFORM} PROXY=${http_proxy:-unset}
"#;
    let ctx = env.ctx("c", &[("Dockerfile", df)]);
    env.build_ok(
        &ctx,
        &[
            "-t",
            "cfg",
            "--build-arg",
            "V=val",
            "--label",
            "extra=1",
            "--build-arg",
            "http_proxy=http://proxy:3128",
        ],
    );
    let i = env.inspect("cfg");
    let c = &i["Config"];
    let envs: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(envs.contains(&"A=1"), "{envs:?}");
    assert!(envs.contains(&"B=two words"), "{envs:?}");
    assert!(envs.contains(&"C=val"), "{envs:?}");
    assert!(envs.contains(&"LEGACY=value with spaces"), "{envs:?}");
    // Platform ARGs are predefined (declared to be used in a stage); proxy ARGs are not
    // expanded unless declared.
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    assert!(envs.contains(&format!("ARCH={arch}").as_str()), "{envs:?}");
    assert!(
        envs.contains(&format!("PLAT=linux/{arch}").as_str()),
        "{envs:?}"
    );
    assert!(envs.contains(&"PROXY=unset"), "{envs:?}");
    assert_eq!(c["Labels"]["org.test.v"], "set");
    assert_eq!(c["Labels"]["quoted key"], "x");
    assert_eq!(c["Labels"]["extra"], "1");
    assert!(c["ExposedPorts"]["80/tcp"].is_object());
    assert!(c["ExposedPorts"]["53/udp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["WorkingDir"], "/srv/sub");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q localhost"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo triggered"]));
    assert_eq!(i["Author"], "someone");
    // Shell-form ENTRYPOINT uses the SHELL in effect; CMD after it stays.
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/bin/sh", "-ec", "echo entry"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["x"]));
    let h = env.history("cfg");
    assert!(
        h.contains(&"ENV A=1 B=two words C=val".to_string()),
        "{h:?}"
    );
    assert!(h.contains(&"WORKDIR /srv/sub".to_string()), "{h:?}");
    assert!(h.contains(&"USER nobody".to_string()), "{h:?}");
}

#[test]
fn onbuild_triggers_run_in_children() {
    let env = Env::new("build-onbuild");
    let parent = env.ctx(
        "p",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD RUN echo from-trigger > /trig\n",
        )],
    );
    env.build_ok(&parent, &["-t", "parent"]);
    let child = env.ctx("c", &[("Dockerfile", "FROM parent\nRUN cat /trig\n")]);
    let log = env.build_ok(&child, &["-t", "child"]);
    assert!(log.contains("from-trigger"), "{log}");
    assert_eq!(env.sh("child", "cat /trig"), "from-trigger\n");
    assert!(env.inspect("child")["Config"]["OnBuild"].is_null());
}

#[test]
fn run_and_copy_files_owners_modes() {
    let env = Env::new("build-files");
    let df = "FROM busybox
WORKDIR /app
RUN echo made-by-run > run.txt && echo app:x:1234:1234::/home/app:/bin/sh >> /etc/passwd && echo app:x:1234: >> /etc/group && chmod 1777 /tmp
COPY a.txt b*.txt ./
COPY dir /app/dircopy/
COPY --chown=app:app --chmod=640 a.txt owned.txt
COPY dir/sub/deep.txt /abs/renamed
USER app
RUN id -u > /tmp/uid
USER root
RUN rm -r /root /app/b2.txt
USER app
";
    let ctx = env.ctx(
        "f",
        &[
            ("Dockerfile", df),
            ("a.txt", "A\n"),
            ("b1.txt", "B1\n"),
            ("b2.txt", "B2\n"),
            ("c.txt", "C\n"),
            ("dir/top.txt", "top\n"),
            ("dir/sub/deep.txt", "deep\n"),
        ],
    );
    std::fs::set_permissions(
        ctx.join("b1.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.build_ok(&ctx, &["-t", "files"]);
    let out = env.sh(
        "files",
        "cat /app/run.txt /app/a.txt /app/b1.txt /app/dircopy/top.txt /app/dircopy/sub/deep.txt /abs/renamed /tmp/uid; \
         test -e /app/c.txt || echo no-c; test -e /app/dircopy/dir || echo contents-only; \
         test -e /root || test -e /app/b2.txt || echo deleted; \
         stat -c '%U:%G %a' /app/owned.txt /app/a.txt /app/b1.txt",
    );
    assert_eq!(
        out,
        "made-by-run\nA\nB1\ntop\ndeep\ndeep\n1234\nno-c\ncontents-only\ndeleted\napp:app 640\nroot:root 644\nroot:root 755\n"
    );
    // Each RUN/COPY is a layer on top of busybox's one.
    let layers = env.inspect("files")["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .len();
    // (WORKDIR /app makes a layer: busybox has no /app.)
    assert_eq!(layers, 1 + 8);
}

#[test]
fn multi_stage_copy_from_and_target() {
    let env = Env::new("build-stages");
    let df = "FROM busybox AS builder
RUN mkdir /out && echo artifact > /out/art && chown 42:43 /out/art
FROM busybox AS unused
RUN echo unused-stage-ran && exit 7
FROM busybox
COPY --from=builder /out/art /art
COPY --from=0 /out /out2
RUN stat -c '%u:%g' /art > /owner
";
    let ctx = env.ctx("s", &[("Dockerfile", df)]);
    let log = env.build_ok(&ctx, &["-t", "final"]);
    assert!(
        !log.contains("unused-stage-ran"),
        "an unneeded stage was built: {log}"
    );
    assert_eq!(
        env.sh("final", "cat /art /out2/art /owner"),
        "artifact\nartifact\n42:43\n"
    );
    // --target stops at the named stage.
    env.build_ok(&ctx, &["-t", "onlybuilder", "--target", "builder"]);
    assert_eq!(env.sh("onlybuilder", "cat /out/art"), "artifact\n");
    let o = env.build(&ctx, &["--target", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("target stage \"nope\" could not be found"));
}

#[test]
fn cache_hits_and_misses_exactly_where_expected() {
    let env = Env::new("build-cache");
    let df = "FROM busybox
RUN echo first-run-$((40+2)) && echo x > /one
COPY a /a
RUN echo second-run-$((40+2)) && cat /a > /b
COPY b /bb
CMD [\"cat\", \"/bb\"]
";
    let ctx = env.ctx("k", &[("Dockerfile", df), ("a", "a1\n"), ("b", "b1\n")]);
    let cached = |log: &str| log.matches("CACHED").count();
    let log = env.build_ok(&ctx, &["-t", "k"]);
    assert_eq!(cached(&log), 0, "{log}");
    assert!(log.contains("first-run-42"));
    let id1 = env.inspect("k")["Id"].clone();
    // No change: every step from the cache, no RUN executes, same image.
    let log = env.build_ok(&ctx, &["-t", "k"]);
    assert_eq!(cached(&log), 4, "{log}");
    assert!(!log.contains("first-run-42") && !log.contains("second-run-42"));
    assert_eq!(env.inspect("k")["Id"], id1);
    // Changing b rebuilds only its COPY.
    std::fs::write(ctx.join("b"), "b2\n").unwrap();
    let log = env.build_ok(&ctx, &["-t", "k"]);
    assert_eq!(cached(&log), 3, "{log}");
    assert_eq!(env.sh("k", "cat /bb"), "b2\n");
    // Changing a rebuilds from its COPY on: the first RUN stays cached.
    std::fs::write(ctx.join("a"), "a2\n").unwrap();
    let log = env.build_ok(&ctx, &["-t", "k"]);
    assert_eq!(cached(&log), 1, "{log}");
    assert!(!log.contains("first-run-42") && log.contains("second-run-42"));
    assert_eq!(env.sh("k", "cat /b"), "a2\n");
    // A changed file mode is a change too.
    std::fs::set_permissions(
        ctx.join("b"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let log = env.build_ok(&ctx, &["-t", "k"]);
    assert_eq!(cached(&log), 3, "{log}");
    // --no-cache runs everything.
    let log = env.build_ok(&ctx, &["-t", "k", "--no-cache"]);
    assert_eq!(cached(&log), 0, "{log}");
    // A changed build arg used by RUN misses from that RUN.
    let df2 = "FROM busybox\nARG X=1\nRUN echo x=$X > /x\n";
    let ctx2 = env.ctx("k2", &[("Dockerfile", df2)]);
    env.build_ok(&ctx2, &["-t", "k2"]);
    let log = env.build_ok(&ctx2, &["-t", "k2", "--build-arg", "X=2"]);
    assert_eq!(cached(&log), 0, "{log}");
    assert_eq!(env.sh("k2", "cat /x"), "x=2\n");
    // builder du lists the cache, builder prune empties it.
    let du = env.ok(&["builder", "du"]);
    assert!(du.contains("Total:"), "{du}");
    env.ok(&["builder", "prune", "-f"]);
    let log = env.build_ok(&ctx2, &["-t", "k2", "--build-arg", "X=2"]);
    assert_eq!(cached(&log), 0, "{log}");
}

#[test]
fn dockerignore_patterns_and_exceptions() {
    let env = Env::new("build-ignore");
    let df = "FROM busybox\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort\n";
    let ctx = env.ctx(
        "i",
        &[
            ("Dockerfile", df),
            (
                ".dockerignore",
                "# comment\n*.md\n!README.md\nsecret\n**/*.tmp\n/build/out\n",
            ),
            ("README.md", "r"),
            ("NOTES.md", "n"),
            ("keep.txt", "k"),
            ("secret/key", "s"),
            ("a/b/c.tmp", "t"),
            ("a/b/c.txt", "t"),
            ("build/out/x", "x"),
            ("build/in/y", "y"),
        ],
    );
    env.build_ok(&ctx, &["-t", "ign"]);
    let files = env.sh("ign", "cd /ctx && find . -type f | sort");
    assert_eq!(
        files,
        "./.dockerignore\n./Dockerfile\n./README.md\n./a/b/c.txt\n./build/in/y\n./keep.txt\n"
    );
    // <Dockerfile>.dockerignore beside a named Dockerfile wins over the context's.
    std::fs::create_dir_all(ctx.join("df")).unwrap();
    std::fs::write(ctx.join("df/Build.file"), df).unwrap();
    std::fs::write(ctx.join("df/Build.file.dockerignore"), "keep.txt\ndf\n").unwrap();
    let f = ctx.join("df/Build.file");
    env.build_ok(&ctx, &["-t", "ign2", "-f", f.to_str().unwrap()]);
    let files = env.sh("ign2", "cd /ctx && find . -type f | sort");
    assert!(
        !files.contains("keep.txt") && files.contains("NOTES.md"),
        "{files}"
    );
    // An ignored file cannot be named by COPY.
    let ctx3 = env.ctx(
        "i3",
        &[
            ("Dockerfile", "FROM busybox\nCOPY secret.txt /\n"),
            (".dockerignore", "secret.txt\n"),
            ("secret.txt", "s"),
        ],
    );
    let o = env.build(&ctx3, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("secret.txt"), "{}", stderr(&o));
}

#[test]
fn heredocs_run_and_copy() {
    let env = Env::new("build-heredoc");
    let df = "FROM busybox
ARG NAME=world
RUN <<EOF
echo line1 > /h1
echo line2 >> /h1
EOF
RUN cat <<A > /h2 && cat <<-B > /h3
first $NAME
A
\t\ttabbed
\tB
COPY <<EOT /greeting
hello ${NAME}
EOT
COPY <<'EOT' /raw
hello ${NAME}
EOT
COPY <<X <<Y /multi/
x-content
X
y-content
Y
RUN <<EOF
#!/bin/sh
echo shebang-script-ran > /h4
EOF
";
    let ctx = env.ctx("h", &[("Dockerfile", df)]);
    env.build_ok(&ctx, &["-t", "here"]);
    assert_eq!(
        env.sh(
            "here",
            "cat /h1 /h2 /h3 /greeting /raw /multi/X /multi/Y /h4"
        ),
        "line1\nline2\nfirst world\ntabbed\nhello world\nhello ${NAME}\nx-content\ny-content\nshebang-script-ran\n"
    );
}

#[test]
fn parse_and_expansion_errors_name_line_and_column() {
    let env = Env::new("build-errors");
    let cases: &[(&str, &str)] = &[
        (
            "FROM busybox\nRUN true\n  BOGUS x\n",
            "Dockerfile:3:3: unknown instruction: BOGUS",
        ),
        (
            "FROM busybox\nCOPY --nope=1 a b\n",
            "Dockerfile:2:6: unknown flag: --nope",
        ),
        (
            "FROM busybox\nRUN <<EOF\necho never ends\n",
            "Dockerfile:2:5: unterminated heredoc",
        ),
        (
            "FROM busybox\nARG V\nENV X=${V?must_be_set}\n",
            "Dockerfile:3: V: must_be_set",
        ),
        (
            "FROM busybox\nCOPY missing.txt /\n",
            "Dockerfile:2: failed to compute cache key: \"missing.txt\": not found",
        ),
        (
            "RUN true\nFROM busybox\n",
            "Dockerfile:1: no build stage in current context",
        ),
        (
            "FROM busybox\nADD https://example.com/x.tgz /\n",
            "downloading from a URL is not supported",
        ),
        ("FROM nosuchimage\n", "Dockerfile:1: nosuchimage"),
    ];
    for (i, (df, want)) in cases.iter().enumerate() {
        let ctx = env.ctx(&format!("e{i}"), &[("Dockerfile", df)]);
        let o = env.build(&ctx, &["-t", "bad"]);
        assert_eq!(o.status.code(), Some(1), "{df}");
        let err = stderr(&o);
        assert!(err.contains(want), "{df:?}: want {want:?} in:\n{err}");
    }
    // The offending line is shown.
    let ctx = env.ctx("show", &[("Dockerfile", "FROM busybox\n  BOGUS x\n")]);
    let err = stderr(&env.build(&ctx, &[]));
    assert!(err.contains("    2 |   BOGUS x"), "{err}");
    // Nothing was tagged.
    assert!(!env.sk(&["image", "inspect", "bad"]).status.success());
}

#[test]
fn failing_run_exits_1_naming_the_step_with_its_output() {
    let env = Env::new("build-fail");
    let df = "FROM busybox\nRUN echo boom-out && echo boom-err >&2 && exit 3\n";
    let ctx = env.ctx("f", &[("Dockerfile", df)]);
    let o = env.build(&ctx, &["-t", "failed"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("[stage-0 2/2] RUN echo boom-out"),
        "step not named: {err}"
    );
    assert!(
        err.contains("boom-out") && err.contains("boom-err"),
        "{err}"
    );
    assert!(
        err.contains("did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(!env.sk(&["image", "inspect", "failed"]).status.success());
    // The default RUN network is a namespace of its own with only lo, which is up, and
    // /etc/hosts names localhost; neither the hosts file nor its mount point is in the layer.
    let ctx = env.ctx(
        "n",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN ls /sys/class/net > /nets && ping -c1 -W1 localhost >/dev/null && echo up > /lo && grep -c buildkitsandbox /etc/hosts > /hosts-seen\n",
        )],
    );
    env.build_ok(&ctx, &["-t", "net"]);
    assert_eq!(env.sh("net", "cat /nets /lo /hosts-seen"), "lo\nup\n1\n");
    let h = env.sh("net", "cat /etc/hosts");
    assert!(!h.contains("buildkitsandbox"), "{h}");
}

#[test]
fn add_extracts_local_tar_archives() {
    let env = Env::new("build-add");
    let ctx = env.ctx(
        "a",
        &[
            (
                "Dockerfile",
                "FROM busybox\nADD arch.tar.gz /dest/\nADD arch.tar.bz2 /bz/\nADD arch.tar.xz /xz/\nADD plain.txt /p.txt\nADD notreally.bz2 /n.bz2\n",
            ),
            ("plain.txt", "plain\n"),
            // bzip2's magic but no tar inside: copied as it is, as docker does.
            ("notreally.bz2", "BZh9 not an archive\n"),
            ("src/inner/file", "inside\n"),
        ],
    );
    let tar = |args: &[&str], dir: &std::path::Path| {
        let st = std::process::Command::new("tar")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(st.success(), "tar {args:?}");
    };
    tar(&["czf", "arch.tar.gz", "-C", "src", "inner"], &ctx);
    tar(&["cjf", "arch.tar.bz2", "-C", "src", "inner"], &ctx);
    tar(&["cJf", "arch.tar.xz", "-C", "src", "inner"], &ctx);
    env.build_ok(&ctx, &["-t", "added"]);
    assert_eq!(
        env.sh(
            "added",
            "cat /dest/inner/file /bz/inner/file /xz/inner/file /p.txt /n.bz2"
        ),
        "inside\ninside\ninside\nplain\nBZh9 not an archive\n"
    );

    // A compressed tarball cut short (its first header reads, the rest is missing) fails the
    // step with an error that names the file.
    // Incompressible (xorshift) bytes, so half of the compressed file is half of the data.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for (flag, name) in [("z", "bad.tar.gz"), ("J", "bad.tar.xz")] {
        let c = env.ctx(
            name,
            &[(
                "Dockerfile",
                &format!("FROM busybox\nADD {name} /d/\n") as &str,
            )],
        );
        std::fs::create_dir_all(c.join("src")).unwrap();
        std::fs::write(c.join("src/big"), &big).unwrap();
        tar(&[&format!("c{flag}f"), name, "-C", "src", "big"], &c);
        let full = std::fs::read(c.join(name)).unwrap();
        std::fs::write(c.join(name), &full[..full.len() / 2]).unwrap();
        let o = env.build(&c, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(&format!("ADD {name}: corrupt or truncated archive")),
            "{name}: {err}"
        );
    }
}

#[test]
fn stdin_dockerfile_tar_context_quiet_and_iidfile() {
    let env = Env::new("build-stdin");
    let ctx = env.ctx("s", &[("data.txt", "from-context\n")]);
    let iid = env.dir.path().join("iid");
    // -f -: the Dockerfile from stdin, the context from PATH; -q prints only the id.
    let mut c = env.cmd(&[
        "build",
        "-q",
        "-t",
        "fromstdin",
        "--iidfile",
        iid.to_str().unwrap(),
        "-f",
        "-",
        ctx.to_str().unwrap(),
    ]);
    let mut ch = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nCOPY data.txt /\n")
        .unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id:?}");
    assert!(stderr(&o).is_empty(), "-q printed progress: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(env.inspect("fromstdin")["Id"], id.as_str());
    // `-`: a tar context on stdin.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY data.txt /t\n").unwrap();
    let tar = std::process::Command::new("tar")
        .args(["cf", "-", "."])
        .current_dir(&ctx)
        .output()
        .unwrap();
    let mut c = env.cmd(&["build", "-t", "fromtar", "-"]);
    let mut ch = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(env.sh("fromtar", "cat /t"), "from-context\n");
}

#[test]
fn run_mounts_cache_tmpfs_bind_secret() {
    let env = Env::new("build-mounts");
    let df = "FROM busybox
RUN --mount=type=cache,target=/cache,id=c1 n=$(cat /cache/n 2>/dev/null || echo 0); echo $((n+1)) > /cache/n; echo count=$((n+1))
RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/y && ls /scratch > /tmpfs-list
RUN --mount=type=bind,source=sub,target=/mnt/src cat /mnt/src/f > /from-bind
RUN --mount=type=secret,id=tok,required cat /run/secrets/tok | wc -c > /secret-len
RUN --mount=type=bind,source=sub,target=/mnt/rw,rw echo changed > /mnt/rw/f && cat /mnt/rw/f > /rw-seen
";
    let ctx = env.ctx("m", &[("Dockerfile", df), ("sub/f", "bound\n")]);
    let secret = env.dir.path().join("secret.txt");
    std::fs::write(&secret, "s3cret").unwrap();
    let sarg = format!("id=tok,src={}", secret.display());
    let log = env.build_ok(&ctx, &["-t", "mnt", "--secret", &sarg]);
    assert!(log.contains("count=1"), "{log}");
    // The cache directory outlives the build; --no-cache still sees it.
    let log = env.build_ok(&ctx, &["-t", "mnt", "--no-cache", "--secret", &sarg]);
    assert!(log.contains("count=2"), "{log}");
    assert_eq!(
        env.sh(
            "mnt",
            "cat /tmpfs-list /from-bind /secret-len /rw-seen; ls -d /cache /scratch /mnt /run/secrets 2>&1 | grep -c 'No such file'"
        ),
        "y\nbound\n6\nchanged\n4\n"
    );
    // rw binds never write back into the context.
    assert_eq!(
        std::fs::read_to_string(ctx.join("sub/f")).unwrap(),
        "bound\n"
    );
    // A changed bound file is a cache miss for that RUN only.
    std::fs::write(ctx.join("sub/f"), "bound2\n").unwrap();
    let log = env.build_ok(&ctx, &["-t", "mnt", "--secret", &sarg]);
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");
    assert_eq!(env.sh("mnt", "cat /from-bind"), "bound2\n");
    // A required secret that is not given fails the build.
    let o = env.build(&ctx, &["-t", "mnt", "--no-cache"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("secret tok: not provided"),
        "{}",
        stderr(&o)
    );
    // ssh mounts are refused clearly.
    let ctx2 = env.ctx(
        "ssh",
        &[("Dockerfile", "FROM busybox\nRUN --mount=type=ssh true\n")],
    );
    let o = env.build(&ctx2, &[]);
    assert!(stderr(&o).contains("not supported"), "{}", stderr(&o));
}

impl Env {
    /// Starts `skiff build --progress=plain CTX` without waiting for it.
    fn spawn_build(&self, ctx: &std::path::Path) -> std::process::Child {
        self.cmd(&["build", "--progress=plain", ctx.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Waits for a build started by `spawn_build`, which must succeed; returns its log.
fn finish_build(c: std::process::Child) -> String {
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "build failed: {}", stderr(&o));
    stderr(&o)
}

#[test]
fn cache_mount_sharing_between_concurrent_builds() {
    let env = Env::new("build-sharing");
    // sharing=private: a second build that asks for the cache while the first holds it gets a
    // fresh directory of its own instead of waiting; the first waits (30 s at most) for the
    // second's mark in a shared cache, so waiting would fail it.
    let first = "FROM busybox
RUN --mount=type=cache,id=p,target=/c,sharing=private --mount=type=cache,id=sync,target=/s touch /c/one /s/started; for i in $(seq 300); do [ -e /s/done ] && echo first-saw=$(ls /c | tr '\\n' ,) && exit 0; sleep 0.1; done; echo gave-up; exit 1
";
    let second = "FROM busybox
RUN --mount=type=cache,id=sync,target=/s for i in $(seq 300); do [ -e /s/started ] && exit 0; sleep 0.1; done; exit 1
RUN --mount=type=cache,id=p,target=/c,sharing=private --mount=type=cache,id=sync,target=/s echo second-saw=$(ls /c | tr '\\n' ,)end; touch /c/two /s/done
";
    let c1 = env.ctx("private1", &[("Dockerfile", first)]);
    let c2 = env.ctx("private2", &[("Dockerfile", second)]);
    let b1 = env.spawn_build(&c1);
    let b2 = env.spawn_build(&c2);
    let (l1, l2) = (finish_build(b1), finish_build(b2));
    assert!(l1.contains("first-saw=one,"), "{l1}");
    assert!(l2.contains("second-saw=end"), "{l2}");
    // Later, alone, a private user gets the first directory back, with what the first build left.
    let c3 = env.ctx(
        "private3",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,id=p,target=/c,sharing=private echo third-saw=$(ls /c | tr '\\n' ,)\n",
        )],
    );
    let l3 = env.build_ok(&c3, &[]);
    assert!(l3.contains("third-saw=one,"), "{l3}");

    // sharing=locked: two builds at once take turns; their steps never overlap.
    let step = |who: &str| {
        format!(
            "FROM busybox\nRUN --mount=type=cache,id=l,target=/c,sharing=locked echo {who}-start >> /c/log; sleep 2; echo {who}-end >> /c/log\n"
        )
    };
    let ca = env.ctx("lockedA", &[("Dockerfile", &step("A") as &str)]);
    let cb = env.ctx("lockedB", &[("Dockerfile", &step("B") as &str)]);
    let (ba, bb) = (env.spawn_build(&ca), env.spawn_build(&cb));
    finish_build(ba);
    finish_build(bb);
    let cr = env.ctx(
        "lockedR",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,id=l,target=/c,sharing=locked echo log=$(cat /c/log | tr '\\n' ,)\n",
        )],
    );
    let log = env.build_ok(&cr, &[]);
    assert!(
        log.contains("log=A-start,A-end,B-start,B-end,")
            || log.contains("log=B-start,B-end,A-start,A-end,"),
        "{log}"
    );
}

/// Debian's dockerd with a data root, exec root and socket of its own; stopped on drop.
struct Dockerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
    cgroup: String,
}

impl Dockerd {
    fn start() -> Option<Dockerd> {
        if std::process::Command::new("dockerd")
            .arg("--version")
            .output()
            .is_err()
        {
            skiff_tests::skip("dockerd is not installed: no side-by-side build");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("skiff-build-dockerd-")
            .tempdir()
            .unwrap();
        let cgroup = skiff_tests::unique("skiff-test-build-dockerd");
        let p = dir.path();
        let child = std::process::Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .arg(format!("-H=unix://{}", p.join("d.sock").display()))
            .arg(format!("--data-root={}", p.join("data").display()))
            .arg(format!("--exec-root={}", p.join("exec").display()))
            .arg(format!("--pidfile={}", p.join("d.pid").display()))
            .arg(format!("--cgroup-parent={cgroup}"))
            .stdout(std::fs::File::create(p.join("d.log")).unwrap())
            .stderr(std::fs::File::create(p.join("d.err")).unwrap())
            .spawn()
            .unwrap();
        let d = Dockerd { dir, child, cgroup };
        for _ in 0..150 {
            if d.docker(&["info"]).status.success() {
                return Some(d);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        skiff_tests::skip("dockerd did not come up here: no side-by-side build");
        None
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("docker");
        c.env("DOCKER_BUILDKIT", "0")
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("d.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in stdout(&ids).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SAFETY: kill with the pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        skiff_tests::unmount_under(self.dir.path());
        for d in skiff_tests::cgroup_parent_dirs(&self.cgroup) {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

#[test]
fn side_by_side_with_dockerd_legacy_builder() {
    let env = Env::new("build-sbs");
    let Some(d) = Dockerd::start() else {
        return;
    };
    // Docker gets the same busybox image.
    let save = env.cmd(&["save", "busybox:latest"]).output().unwrap();
    assert!(save.status.success());
    let mut load = d.cmd(&["load"]);
    let mut ch = load
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin.take().unwrap().write_all(&save.stdout).unwrap();
    assert!(ch.wait_with_output().unwrap().status.success());
    let df = "FROM busybox
ARG V=1
ENV A=1 B=\"two words\" C=${V:-none}
LABEL l1=v1 \"l 2\"=\"v 2\"
EXPOSE 80 53/udp
VOLUME /data
WORKDIR /app
COPY a.txt dir ./
COPY --chown=65534:65534 a.txt /owned/
RUN echo v$V > run.txt && mkdir -p sub/deep && chown 65534 run.txt && chmod 600 a.txt
USER nobody
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --retries=3 CMD true
SHELL [\"/bin/sh\", \"-ec\"]
ONBUILD RUN echo hi
ENTRYPOINT [\"sh\"]
CMD [\"-c\", \"cat run.txt\"]
";
    let ctx = env.ctx(
        "sbs",
        &[
            ("Dockerfile", df),
            ("a.txt", "a\n"),
            ("dir/x", "x\n"),
            ("dir/sub/y", "y\n"),
        ],
    );
    env.build_ok(&ctx, &["-t", "sbs", "--build-arg", "V=7"]);
    d.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "--build-arg",
        "V=7",
        "-t",
        "sbs",
        ctx.to_str().unwrap(),
    ]);
    let ours = env.inspect("sbs")["Config"].clone();
    let theirs: Value = serde_json::from_str(&d.ok(&["image", "inspect", "sbs"])).unwrap();
    let theirs = theirs[0]["Config"].clone();
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Volumes",
        "Labels",
        "Healthcheck",
        "StopSignal",
        "Shell",
        "OnBuild",
    ] {
        assert_eq!(ours[k], theirs[k], "Config.{k}: skiff vs docker");
    }
    // The same files, owners, modes and sizes.
    let list = "find /app /owned | sort | xargs stat -c '%n %F %a %u:%g %s'";
    let ours = env.ok(&[
        "run",
        "--rm",
        "-u",
        "0",
        "--entrypoint",
        "",
        "sbs",
        "sh",
        "-c",
        list,
    ]);
    let theirs = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "0",
        "--entrypoint",
        "",
        "sbs",
        "sh",
        "-c",
        list,
    ]);
    assert_eq!(ours, theirs, "file trees differ");
    // And the skiff-built image runs under docker.
    let save = env.cmd(&["save", "sbs"]).output().unwrap();
    assert!(save.status.success());
    d.ok(&["rmi", "sbs"]);
    let mut load = d.cmd(&["load"]);
    let mut ch = load
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin.take().unwrap().write_all(&save.stdout).unwrap();
    assert!(ch.wait_with_output().unwrap().status.success());
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "sbs"]), "v7\n");
}

/// Podman with a storage root, run root and temp dir of its own (runc, cgroupfs, no network);
/// its containers, images and mounts are removed on drop.
struct Podman {
    dir: tempfile::TempDir,
    cgroup: String,
}

impl Podman {
    /// None (after a printed reason) when podman is not installed or cannot run here.
    fn new(cgroup: &str) -> Option<Podman> {
        if std::process::Command::new("podman")
            .arg("--version")
            .output()
            .is_err()
        {
            skiff_tests::skip("podman is not installed (apt-get install podman)");
            return None;
        }
        let p = Podman {
            dir: tempfile::Builder::new()
                .prefix("skiff-podman-")
                .tempdir()
                .unwrap(),
            cgroup: cgroup.to_string(),
        };
        let o = p.podman(&["info"]);
        if !o.status.success() {
            skiff_tests::skip(&format!("podman cannot run here: {}", stderr(&o)));
            return None;
        }
        Some(p)
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let d = self.dir.path();
        let mut c = std::process::Command::new("podman");
        c.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args([
                "--storage-driver",
                "overlay",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                // crun refuses hybrid cgroup hierarchies; runc runs on them.
                "--runtime",
                "runc",
            ])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.podman(args);
        assert!(
            o.status.success(),
            "podman {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f"]);
        let _ = self.podman(&["rmi", "-a", "-f"]);
        skiff_tests::unmount_under(self.dir.path());
        // podman puts conmon in `<parent>/conmon/<parent>`: children first.
        fn rmdir_tree(d: &std::path::Path) {
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        rmdir_tree(&e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        for d in skiff_tests::cgroup_parent_dirs(&self.cgroup) {
            rmdir_tree(&d);
        }
    }
}

/// A skiff-built image (several layers, config, a non-root user's file) runs under podman
/// after `skiff save | podman load`.
#[test]
fn built_image_runs_under_podman() {
    let env = Env::new("build-podman");
    let cgroup = skiff_tests::unique("skiff-test-podman");
    let Some(p) = Podman::new(&cgroup) else {
        return;
    };
    let df = "FROM busybox
ENV GREETING=hello
WORKDIR /app
COPY msg.txt ./
RUN echo \"$GREETING from run\" > run.txt && chown 65534:65534 run.txt && chmod 640 run.txt
USER nobody
CMD [\"sh\", \"-c\", \"cat msg.txt run.txt; id -u; pwd; stat -c '%a %u' run.txt\"]
";
    let ctx = env.ctx("pm", &[("Dockerfile", df), ("msg.txt", "from context\n")]);
    env.build_ok(&ctx, &["-t", "skiffbuilt:1"]);
    let save = env.cmd(&["save", "skiffbuilt:1"]).output().unwrap();
    assert!(save.status.success(), "{}", stderr(&save));
    let mut ch = p
        .cmd(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ch.stdin.take().unwrap().write_all(&save.stdout).unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(o.status.success(), "podman load: {}", stderr(&o));
    assert!(stdout(&o).contains("skiffbuilt:1"), "{}", stdout(&o));
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cgroup-parent",
        &cgroup,
        // podman asks for 1048576 open files and the host's process limit; without
        // CAP_SYS_RESOURCE runc may not raise them that far (EPERM), so ask for less.
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "skiffbuilt:1",
    ]);
    assert_eq!(
        out,
        "from context\nhello from run\n65534\n/app\n640 65534\n"
    );
}

#[test]
fn outputs_named_contexts_metadata_and_no_cache_filter() {
    let env = Env::new("build-outputs");
    let df = "FROM busybox AS a
RUN echo a-ran-$((40+2)) | tee /a && ln -s a /link
FROM scratch
COPY --from=a /a /link /
COPY --from=extra e.txt /e
";
    let ctx = env.ctx("o", &[("Dockerfile", df)]);
    let extra = env.ctx("extra", &[("e.txt", "named\n")]);
    let out = env.dir.path().join("out");
    let tarf = env.dir.path().join("out.tar");
    let md = env.dir.path().join("md.json");
    let bc = format!("extra={}", extra.display());
    let local = format!("type=local,dest={}", out.display());
    let tar = format!("type=tar,dest={}", tarf.display());
    env.build_ok(
        &ctx,
        &[
            "-t",
            "outs",
            "--build-context",
            &bc,
            "-o",
            &local,
            "-o",
            &tar,
            "--metadata-file",
            md.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("a")).unwrap(),
        "a-ran-42\n"
    );
    assert_eq!(std::fs::read_to_string(out.join("e")).unwrap(), "named\n");
    // A symlink named as a COPY source is followed, as docker does.
    assert_eq!(
        std::fs::read_to_string(out.join("link")).unwrap(),
        "a-ran-42\n"
    );
    assert!(!std::fs::symlink_metadata(out.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    let list = std::process::Command::new("tar")
        .arg("tf")
        .arg(&tarf)
        .output()
        .unwrap();
    let names = stdout(&list);
    assert!(
        names.lines().any(|l| l == "a") && names.lines().any(|l| l == "e"),
        "{names}"
    );
    let m: Value = serde_json::from_slice(&std::fs::read(&md).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], env.inspect("outs")["Id"]);
    assert_eq!(m["image.name"], "docker.io/library/outs:latest");
    // --no-cache-filter reruns only that stage's steps.
    let log = env.build_ok(
        &ctx,
        &[
            "-t",
            "outs",
            "--build-context",
            &bc,
            "--no-cache-filter",
            "a",
        ],
    );
    assert!(log.contains("a-ran-42"), "{log}");
    let log = env.build_ok(&ctx, &["-t", "outs", "--build-context", &bc]);
    assert!(!log.contains("a-ran-42"), "{log}");
    // Unsupported outputs and contexts are refused clearly.
    let o = env.build(&ctx, &["-o", "type=registry,dest=x"]);
    assert!(stderr(&o).contains("unsupported type"), "{}", stderr(&o));
    let o = env.build(&ctx, &["--build-context", "x=https://example.com/r.git"]);
    assert!(
        stderr(&o).contains("only local directories"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn context_index_never_serves_stale_digests() {
    let env = Env::new("build-ctxindex");
    let ctx = env.ctx(
        "x",
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            ("f1", "aaaa\n"),
            ("f2", "bbbb\n"),
        ],
    );
    let old = std::fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000));
    for f in ["f1", "f2", "Dockerfile"] {
        std::fs::File::options()
            .write(true)
            .open(ctx.join(f))
            .unwrap()
            .set_times(old)
            .unwrap();
    }
    // Files changed in the last seconds are not indexed (their mtime may still move).
    std::thread::sleep(std::time::Duration::from_millis(3100));
    env.build_ok(&ctx, &["-t", "ix"]);
    let db = rusqlite::Connection::open(env.root().join("skiff.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM build_context_index", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 2, "context files were not indexed ({n} rows)");
    drop(db);
    let log = env.build_ok(&ctx, &["-t", "ix"]);
    assert_eq!(log.matches("CACHED").count(), 1, "{log}");
    // Same size, same mtime, other contents: the changed ctime makes it a miss.
    std::fs::write(ctx.join("f1"), "cccc\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(ctx.join("f1"))
        .unwrap()
        .set_times(old)
        .unwrap();
    let log = env.build_ok(&ctx, &["-t", "ix"]);
    assert_eq!(log.matches("CACHED").count(), 0, "{log}");
    assert_eq!(env.sh("ix", "cat /ctx/f1"), "cccc\n");
}

#[test]
fn interrupted_build_leaves_nothing_behind() {
    let env = Env::new("build-interrupt");
    let ctx = env.ctx(
        "s",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo started-$((6*7)); sleep 60\n",
        )],
    );
    let mut ch = env
        .cmd(&[
            "build",
            "--progress=plain",
            "-t",
            "never",
            ctx.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the step to run, then stop the build as `kill` or a closing terminal would.
    let mut err = ch.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("started-42") {
        let n = std::io::Read::read(&mut err, &mut buf).unwrap();
        assert!(
            n > 0,
            "build ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let t0 = std::time::Instant::now();
    // SAFETY: kill with the pid of our own child.
    unsafe { libc::kill(ch.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let st = ch.wait().unwrap();
    assert_eq!(st.code(), Some(128 + libc::SIGTERM), "{rest}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "the RUN was not stopped"
    );
    assert!(rest.contains("build interrupted"), "{rest}");
    let root = env.root().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains(&root)),
        "mounts left under {root}"
    );
    let tmp: Vec<_> = std::fs::read_dir(env.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temporary directories left: {tmp:?}");
    assert!(!env.sk(&["image", "inspect", "never"]).status.success());
}

#[test]
fn terminal_progress_redraws_and_collapses() {
    let env = Env::new("build-tty");
    let ctx = env.ctx(
        "t",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN for i in 1 2 3; do echo tick-$((i*11)); sleep 0.3; done\n",
        )],
    );
    let cmd = env.cmd(&["build", "-t", "tty", ctx.to_str().unwrap()]);
    let mut pty = skiff_tests::Pty::spawn(cmd, 30, 100);
    // While the step runs its output shows under it; the finished display has the header.
    pty.expect(" => => # tick-33", 60);
    pty.expect("FINISHED", 60);
    let st = pty.wait(30).expect("build did not exit");
    assert!(st.success());
    // The last frame (after the final cursor-up) lists the step without its output lines.
    let text = pty.text();
    let last = text.rsplit("\x1b[J").next().unwrap();
    assert!(
        last.contains("[+] Building") && last.contains("FINISHED"),
        "{last}"
    );
    assert!(last.contains("RUN for i in 1 2 3"), "{last}");
    assert!(!last.contains("=> => #"), "output not collapsed: {last}");
}

#[test]
fn killed_build_is_swept_by_the_next_command() {
    let env = Env::new("build-killed");
    let ctx = env.ctx(
        "k",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo started-$((6*7)); sleep 2\n",
        )],
    );
    let mut ch = env
        .cmd(&["build", "--progress=plain", ctx.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = ch.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("started-42") {
        let n = std::io::Read::read(&mut err, &mut buf).unwrap();
        assert!(
            n > 0,
            "build ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // SIGKILL: no cleanup runs; the step's overlay stays mounted under <root>/tmp.
    ch.kill().unwrap();
    ch.wait().unwrap();
    let tmp = env.root().join("tmp");
    let prefix = format!("{}/", tmp.display());
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix)))
            .count()
    };
    assert!(
        mounted() > 0,
        "the killed build left no mount to sweep: {prefix} {}",
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains("build-killed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The step's container ends on its own (sleep 2); then the next command sweeps.
    std::thread::sleep(std::time::Duration::from_secs(3));
    env.ok(&["images"]);
    assert_eq!(mounted(), 0, "stale build mounts were not detached");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    // And building works again.
    env.build_ok(&ctx, &[]);
}

#[test]
fn independent_stages_build_at_the_same_time() {
    let env = Env::new("build-parallel");
    // Each stage waits (up to 60 s) for a mark the other leaves in a shared cache mount: built
    // one after the other, the first would give up.
    let df = "FROM busybox AS a
RUN --mount=type=cache,id=sync,target=/s touch /s/a; for i in $(seq 600); do [ -e /s/b ] && echo a-saw-$((1+1)) && exit 0; sleep 0.1; done; exit 1
FROM busybox AS b
RUN --mount=type=cache,id=sync,target=/s touch /s/b; for i in $(seq 600); do [ -e /s/a ] && echo b-saw-$((1+1)) && exit 0; sleep 0.1; done; exit 1
FROM busybox
COPY --from=a /etc/passwd /pa
COPY --from=b /etc/passwd /pb
";
    let ctx = env.ctx("p", &[("Dockerfile", df)]);
    let log = env.build_ok(&ctx, &["-t", "par"]);
    assert!(log.contains("a-saw-2") && log.contains("b-saw-2"), "{log}");
    env.sh("par", "test -e /pa && test -e /pb");
    // A failing stage fails the build with its own error, not the cancellation of the other.
    let df2 = "FROM busybox AS good
RUN sleep 1
FROM busybox AS bad
RUN echo bad-stage-$((6*7)) && exit 4
FROM busybox
COPY --from=good /etc/passwd /a
COPY --from=bad /etc/passwd /b
";
    let ctx2 = env.ctx("p2", &[("Dockerfile", df2)]);
    let o = env.build(&ctx2, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("exit code: 4") && err.contains("bad-stage-42"),
        "{err}"
    );
}

#[test]
fn missing_base_is_pulled_and_built_images_push() {
    let env = Env::new("build-pull");
    let reg = skiff_tests::registry();
    let base = format!("127.0.0.1:{}/build/base:1", reg.port);
    env.ok(&["tag", "busybox:latest", &base]);
    env.ok(&["push", &base]);
    env.ok(&["rmi", &base]);
    // FROM an image that is not local: pulled, its output kept off stdout (-q prints the id).
    let ctx = env.ctx(
        "p",
        &[(
            "Dockerfile",
            &format!("FROM {base}\nRUN echo pulled-base > /m\n") as &str,
        )],
    );
    env.build_ok(&ctx, &["-t", "frompull"]);
    let o = env.build(&ctx, &["-q", "--pull", "-t", "frompull"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o);
    assert!(
        id.trim().starts_with("sha256:") && id.lines().count() == 1,
        "{id:?}"
    );
    assert_eq!(env.sh("frompull", "cat /m"), "pulled-base\n");
    // The built image goes to the registry and comes back.
    let pushed = format!("127.0.0.1:{}/build/app:1", reg.port);
    env.ok(&["tag", "frompull", &pushed]);
    env.ok(&["push", &pushed]);
    env.ok(&["rmi", &pushed, "frompull"]);
    env.ok(&["pull", &pushed]);
    assert_eq!(env.sh(&pushed, "cat /m"), "pulled-base\n");
    // A base that is nowhere fails with the registry's error, on the FROM line.
    let ctx2 = env.ctx(
        "q",
        &[(
            "Dockerfile",
            &format!("FROM 127.0.0.1:{}/build/none:1\n", reg.port) as &str,
        )],
    );
    let o = env.build(&ctx2, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Dockerfile:1:"), "{}", stderr(&o));
}
