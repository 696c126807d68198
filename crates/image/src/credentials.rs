//! Registry credentials kept as docker keeps them: `config.json` in `$DOCKER_CONFIG` (default
//! `~/.docker`), with base64 `user:password` under `auths`, or handed to a credential helper
//! (`credsStore` for all registries, `credHelpers` per registry) speaking the
//! `docker-credential-<name> get|store|erase` protocol over stdin/stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::{Error, IoContext, Result};
use crate::names::DEFAULT_DOMAIN;

/// The key docker uses for Docker Hub credentials.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A username and secret for one registry. `username == "<token>"` marks an identity
/// (refresh) token in `secret`, as credential helpers return it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or identity token.
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({:?}, <secret>)", self.username)
    }
}

impl Credential {
    /// True when `secret` is an identity token rather than a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == "<token>" || self.username.is_empty()
    }
}

/// Where a login was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// In config.json, unencrypted (the path).
    File(PathBuf),
    /// In a credential helper (its name).
    Helper(String),
}

/// The key under which credentials for registry `domain` are stored (`docker.io` maps to
/// docker's Hub key, everything else is `host[:port]`).
pub fn server_key(domain: &str) -> String {
    if domain == DEFAULT_DOMAIN || domain == "index.docker.io" || domain == "registry-1.docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        domain.to_string()
    }
}

/// The host part of a stored key: scheme and path dropped (`https://h:5000/v2/` → `h:5000`).
pub fn hostname_of(key: &str) -> &str {
    let s = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    s.split('/').next().unwrap_or(s)
}

/// docker's `config.json`, kept as JSON so keys skiff does not know survive a rewrite.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    json: Map<String, Value>,
}

impl DockerConfig {
    /// The directory docker's CLI uses: `$DOCKER_CONFIG`, else `$HOME/.docker`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".docker")
    }

    /// Loads `config.json` from the default directory (an absent file is an empty config).
    pub fn load() -> Result<DockerConfig> {
        Self::load_from(&Self::default_dir())
    }

    /// Loads `dir/config.json` (an absent file is an empty config).
    pub fn load_from(dir: &Path) -> Result<DockerConfig> {
        let path = dir.join("config.json");
        let json = match std::fs::read(&path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(Error::invalid(path.display().to_string(), "not an object")),
                Err(e) => return Err(Error::invalid(path.display().to_string(), e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(Error::path("read", &path, e)),
        };
        Ok(DockerConfig { path, json })
    }

    /// The file this config lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for `key`: `credHelpers[host]`, else `credsStore`.
    pub fn helper_for(&self, key: &str) -> Option<String> {
        let host = hostname_of(key);
        let helpers = self.json.get("credHelpers").and_then(Value::as_object);
        let per = helpers.and_then(|h| {
            h.get(key)
                .or_else(|| h.get(host))
                .or_else(|| {
                    h.iter()
                        .find(|(k, _)| hostname_of(k) == host)
                        .map(|(_, v)| v)
                })
                .and_then(Value::as_str)
        });
        per.or_else(|| self.json.get("credsStore").and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn auth_entry(&self, key: &str) -> Option<(String, &Map<String, Value>)> {
        let auths = self.json.get("auths")?.as_object()?;
        if let Some(Value::Object(m)) = auths.get(key) {
            return Some((key.to_string(), m));
        }
        let host = hostname_of(key);
        auths.iter().find_map(|(k, v)| match v {
            Value::Object(m) if hostname_of(k) == host => Some((k.clone(), m)),
            _ => None,
        })
    }

    /// The credentials for registry key `key` (see [`server_key`]), if any.
    pub fn get(&self, key: &str) -> Result<Option<Credential>> {
        if let Some(h) = self.helper_for(key) {
            return helper_get(&h, key);
        }
        let Some((k, m)) = self.auth_entry(key) else {
            return Ok(None);
        };
        if let Some(t) = m.get("identitytoken").and_then(Value::as_str) {
            if !t.is_empty() {
                return Ok(Some(Credential {
                    username: "<token>".into(),
                    secret: t.into(),
                }));
            }
        }
        if let Some(a) = m
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let bad = |why: String| {
                Error::invalid(format!("auth for {k} in {}", self.path.display()), why)
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| bad(e.to_string()))?;
            let s = String::from_utf8(raw).map_err(|_| bad("not UTF-8".into()))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| bad("not user:password".into()))?;
            return Ok(Some(Credential {
                username: u.into(),
                secret: p.trim_end_matches('\n').into(),
            }));
        }
        match (
            m.get("username").and_then(Value::as_str),
            m.get("password").and_then(Value::as_str),
        ) {
            (Some(u), Some(p)) => Ok(Some(Credential {
                username: u.into(),
                secret: p.into(),
            })),
            _ => Ok(None),
        }
    }

    /// Stores credentials for `key`, in its helper when one is configured, else in config.json.
    pub fn store(&mut self, key: &str, cred: &Credential) -> Result<Stored> {
        if let Some(h) = self.helper_for(key) {
            let input = json!({"ServerURL": key, "Username": cred.username, "Secret": cred.secret});
            run_helper(&h, "store", input.to_string().as_bytes())?;
            // Drop any plain-text copy, as docker does.
            if self.remove_auth(key) {
                self.save()?;
            }
            return Ok(Stored::Helper(h));
        }
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", cred.username, cred.secret));
        let key = self
            .auth_entry(key)
            .map(|(k, _)| k)
            .unwrap_or(key.to_string());
        let auths = self
            .json
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(a) = auths.as_object_mut() {
            a.insert(key, json!({ "auth": auth }));
        }
        self.save()?;
        Ok(Stored::File(self.path.clone()))
    }

    fn remove_auth(&mut self, key: &str) -> bool {
        let Some(found) = self.auth_entry(key).map(|(k, _)| k) else {
            return false;
        };
        self.json
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .is_some_and(|a| a.remove(&found).is_some())
    }

    /// Removes the credentials for `key`; false when there were none.
    pub fn erase(&mut self, key: &str) -> Result<bool> {
        let mut found = false;
        if let Some(h) = self.helper_for(key) {
            found = helper_get(&h, key)?.is_some();
            if found {
                run_helper(&h, "erase", key.as_bytes())?;
            }
        }
        if self.remove_auth(key) {
            found = true;
            self.save()?;
        }
        Ok(found)
    }

    /// Writes config.json atomically with mode 0600 (its directory 0700 when created).
    pub fn save(&self) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::path("create", dir, e))?;
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut b = serde_json::to_vec_pretty(&Value::Object(self.json.clone()))?;
            b.push(b'\n');
            f.write_all(&b)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::path("write", &self.path, e)
        })
    }
}

fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<Vec<u8>> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("credential helper {prog}"))?;
    if let Some(mut i) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status.
        let _ = i.write_all(input);
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("credential helper {prog} {verb}"))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .to_string();
        return Err(Error::Registry(format!(
            "credential helper {prog} {verb}: {}",
            if msg.is_empty() {
                out.status.to_string()
            } else {
                msg
            }
        )));
    }
    Ok(out.stdout)
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credential>> {
    let out = match run_helper(helper, "get", key.as_bytes()) {
        Ok(o) => o,
        Err(Error::Registry(m)) if m.contains("credentials not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_slice(&out)
        .map_err(|e| Error::invalid(format!("output of docker-credential-{helper} get"), e))?;
    let u = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let s = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    if u.is_empty() && s.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: u.into(),
        secret: s.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_auths() {
        assert_eq!(server_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(server_key("h:5000"), "h:5000");
        assert_eq!(hostname_of("https://h:5000/v2/"), "h:5000");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"auths":{"https://h:5000":{"auth":"dTpwOmM="}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load_from(d.path()).unwrap();
        let got = c.get("h:5000").unwrap().unwrap();
        assert_eq!((got.username.as_str(), got.secret.as_str()), ("u", "p:c"));
        assert!(c.get("other").unwrap().is_none());
        let cred = Credential {
            username: "a".into(),
            secret: "b".into(),
        };
        c.store("other:1", &cred).unwrap();
        let c2 = DockerConfig::load_from(d.path()).unwrap();
        assert_eq!(c2.get("other:1").unwrap(), Some(cred));
        assert_eq!(c2.json["psFormat"], "x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(c2.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut c3 = c2;
        assert!(c3.erase("h:5000").unwrap());
        assert!(!c3.erase("h:5000").unwrap());
        assert!(DockerConfig::load_from(d.path())
            .unwrap()
            .get("h:5000")
            .unwrap()
            .is_none());
    }
}
