//! `RUN --mount=…` as BuildKit reads it: `type=cache` (a directory kept across builds under the
//! data root, `id`, `sharing=shared|private|locked`, `mode`/`uid`/`gid`), `type=tmpfs` (`size`),
//! `type=bind` (from the context or `from=` a stage or image, read-only unless `rw`, whose writes
//! are then discarded), `type=secret` (`--secret id=…,src=…|env=…`, mounted read-only at
//! `/run/secrets/<id>` or `target`). `type=ssh` is refused. None of them leaves anything in the
//! step's layer.

use std::collections::BTreeMap;

use crate::BuildError;

/// A `--secret` of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `src=path`.
    File(std::path::PathBuf),
    /// `env=VAR` (the value, read when the flag was parsed).
    Value(Vec<u8>),
}

/// Parses `--secret id=x,src=path` / `id=x,env=VAR` / `id=x` (env var `x`, else file `x`).
pub fn parse_secret(s: &str) -> Result<(String, SecretSource), String> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut typ = None;
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--secret {s}: expected key=value, got {kv:?}"))?;
        match k {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            "type" => typ = Some(v.to_string()),
            _ => return Err(format!("--secret {s}: unexpected key {k:?}")),
        }
    }
    let id = id
        .or_else(|| src.clone())
        .or_else(|| env.clone())
        .ok_or_else(|| format!("--secret {s}: id is required"))?;
    let from_env = |name: &str| -> Result<SecretSource, String> {
        std::env::var_os(name)
            .map(|v| SecretSource::Value(v.into_encoded_bytes()))
            .ok_or_else(|| format!("--secret {s}: environment variable {name} is not set"))
    };
    let source = match (typ.as_deref(), src, env) {
        (_, Some(p), None) => SecretSource::File(p.into()),
        (_, None, Some(e)) => from_env(&e)?,
        (Some("env"), None, None) => from_env(&id)?,
        (Some("file"), None, None) => SecretSource::File(id.clone().into()),
        (None, None, None) => match from_env(&id) {
            Ok(v) => v,
            Err(_) => SecretSource::File(id.clone().into()),
        },
        _ => return Err(format!("--secret {s}: give src or env, not both")),
    };
    Ok((id, source))
}

/// One `--mount` of a RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountReq {
    /// `type=cache`.
    Cache {
        /// Mount point.
        target: String,
        /// Cache id (default: the target).
        id: String,
        /// `shared`, `private` or `locked`.
        sharing: String,
        /// Read-only.
        ro: bool,
        /// Mode of a new cache directory.
        mode: u32,
        /// Owner of a new cache directory.
        uid: u32,
        /// Group of a new cache directory.
        gid: u32,
    },
    /// `type=tmpfs`.
    Tmpfs {
        /// Mount point.
        target: String,
        /// `size=` in bytes, if given.
        size: Option<String>,
    },
    /// `type=bind`.
    Bind {
        /// Mount point.
        target: String,
        /// Path in the source (default: its root).
        source: String,
        /// `from=` stage or image (default: the context).
        from: Option<String>,
        /// Writable (writes discarded after the step).
        rw: bool,
    },
    /// `type=secret`.
    Secret {
        /// Secret id.
        id: String,
        /// Mount point.
        target: String,
        /// Fail when the secret was not given.
        required: bool,
        /// File mode.
        mode: u32,
    },
}

fn mode(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v, 8).map_err(|_| format!("invalid mode {v:?}"))
}

/// Parses one `--mount` value (already expanded).
pub fn parse(s: &str) -> Result<MountReq, String> {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut flags = Vec::new();
    for part in s.split(',') {
        match part.split_once('=') {
            Some((k, v)) => {
                kv.insert(k.to_ascii_lowercase(), v.to_string());
            }
            None => flags.push(part.to_ascii_lowercase()),
        }
    }
    let get = |k: &[&str]| k.iter().find_map(|x| kv.get(*x).cloned());
    let boolean = |k: &str| {
        flags.iter().any(|f| f == k) || kv.get(k).is_some_and(|v| v == "true" || v == "1")
    };
    let typ = get(&["type"]).unwrap_or_else(|| "bind".into());
    let target = get(&["target", "dst", "destination"]);
    let need_target = || {
        target
            .clone()
            .ok_or_else(|| format!("--mount={s}: target is required"))
    };
    let num = |k: &str, d: u32| -> Result<u32, String> {
        match kv.get(k) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--mount={s}: invalid {k} {v:?}")),
            None => Ok(d),
        }
    };
    Ok(match typ.as_str() {
        "cache" => {
            let target = need_target()?;
            let sharing = get(&["sharing"]).unwrap_or_else(|| "shared".into());
            if !matches!(sharing.as_str(), "shared" | "private" | "locked") {
                return Err(format!(
                    "--mount={s}: unsupported sharing value {sharing:?}"
                ));
            }
            MountReq::Cache {
                id: get(&["id"]).unwrap_or_else(|| target.clone()),
                target,
                sharing,
                ro: boolean("ro") || boolean("readonly"),
                mode: match kv.get("mode") {
                    Some(m) => mode(m).map_err(|e| format!("--mount={s}: {e}"))?,
                    None => 0o755,
                },
                uid: num("uid", 0)?,
                gid: num("gid", 0)?,
            }
        }
        "tmpfs" => MountReq::Tmpfs {
            target: need_target()?,
            size: get(&["size"]),
        },
        "bind" => MountReq::Bind {
            target: need_target()?,
            source: get(&["source", "src"]).unwrap_or_default(),
            from: get(&["from"]),
            rw: boolean("rw") || boolean("readwrite"),
        },
        "secret" => {
            let id = get(&["id"])
                .or_else(|| {
                    target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(String::from)
                })
                .ok_or_else(|| format!("--mount={s}: id is required"))?;
            MountReq::Secret {
                target: target
                    .clone()
                    .unwrap_or_else(|| format!("/run/secrets/{id}")),
                id,
                required: boolean("required"),
                mode: match kv.get("mode") {
                    Some(m) => mode(m).map_err(|e| format!("--mount={s}: {e}"))?,
                    None => 0o400,
                },
            }
        }
        "ssh" => {
            return Err(format!(
                "--mount={s}: ssh agent forwarding is not supported by skiff build"
            ))
        }
        t => return Err(format!("--mount={s}: unsupported mount type {t:?}")),
    })
}

/// The OCI mount of a bind.
pub fn bind(src: &std::path::Path, dst: &str, ro: bool) -> Result<serde_json::Value, BuildError> {
    let mut opts = vec!["rbind", "nosuid", "nodev"];
    if ro {
        opts.push("ro");
    }
    Ok(serde_json::json!({"destination": dst, "type": "bind", "source": src, "options": opts}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_forms() {
        assert_eq!(
            parse("type=cache,target=/root/.cache,sharing=locked,mode=0700,uid=5").unwrap(),
            MountReq::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                sharing: "locked".into(),
                ro: false,
                mode: 0o700,
                uid: 5,
                gid: 0
            }
        );
        assert_eq!(
            parse("target=/src,source=sub,ro").unwrap(),
            MountReq::Bind {
                target: "/src".into(),
                source: "sub".into(),
                from: None,
                rw: false
            }
        );
        assert!(matches!(
            parse("type=bind,target=/x,from=build,rw").unwrap(),
            MountReq::Bind { rw: true, .. }
        ));
        assert_eq!(
            parse("type=secret,id=tok").unwrap(),
            MountReq::Secret {
                id: "tok".into(),
                target: "/run/secrets/tok".into(),
                required: false,
                mode: 0o400
            }
        );
        assert!(matches!(
            parse("type=tmpfs,target=/t,size=1m").unwrap(),
            MountReq::Tmpfs { .. }
        ));
        assert!(parse("type=ssh").unwrap_err().contains("not supported"));
        assert!(parse("type=cache")
            .unwrap_err()
            .contains("target is required"));
        assert!(parse("type=cache,target=/c,sharing=odd").is_err());
        assert!(parse("type=nfs,target=/c").is_err());
    }

    #[test]
    fn secret_flags() {
        assert_eq!(
            parse_secret("id=a,src=/tmp/x").unwrap(),
            ("a".into(), SecretSource::File("/tmp/x".into()))
        );
        assert!(parse_secret("id=a,env=SKIFF_SURELY_UNSET_VAR").is_err());
        assert!(parse_secret("src=/x,bogus=1").is_err());
    }
}
