//! The registry client as a library, against Debian's `docker-registry` on 127.0.0.1 with htpasswd
//! Basic auth: `login` verification, push of an imported image through [`Pusher`], pull into a
//! second store through `pull_by_name` with docker's config.json, and the refusals without (or with
//! wrong) credentials.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use skiff_image::credentials::{Credential, DockerConfig};
use skiff_image::import::{import, ImportOptions, ImportSource};
use skiff_image::names::Name;
use skiff_image::pull;
use skiff_image::registry::{pull_by_name, Client, RegistryConfig};
use skiff_image::Store;

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry(dir: &std::path::Path) -> (Registry, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "htpasswd -Bbn alice s3cret > {}/htpasswd",
            dir.display()
        ))
        .status()
        .unwrap();
    assert!(ok.success(), "htpasswd (apache2-utils) is needed");
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {0}/data\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: test\n    path: {0}/htpasswd\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's docker-registry must be installed");
    let reg = Registry(child);
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (reg, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("docker-registry did not start");
}

#[test]
fn push_and_pull_through_the_client_with_basic_auth() {
    let t = tempfile::tempdir().unwrap();
    let (_reg, port) = start_registry(t.path());
    let host = format!("127.0.0.1:{port}");
    let alice = Credential {
        username: "alice".into(),
        secret: "s3cret".into(),
    };

    let anonymous = Client::with_credentials(RegistryConfig::default(), |_| Ok(None));
    let wrong = Credential {
        username: "alice".into(),
        secret: "nope".into(),
    };
    let e = anonymous
        .login(&host, false, &wrong)
        .unwrap_err()
        .to_string();
    assert!(e.contains("401"), "{e}");
    assert_eq!(anonymous.login(&host, false, &alice).unwrap(), host);

    // An imported image, pushed with alice's credentials.
    let src = Store::open(t.path().join("a")).unwrap();
    let rootfs = t.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), "hello\n").unwrap();
    let name = format!("{host}/lib/hello:1");
    let img = import(
        &src,
        ImportSource::Dir(rootfs),
        &ImportOptions {
            tags: vec![name.clone()],
            ..Default::default()
        },
    )
    .unwrap();
    let n = Name::parse(&name).unwrap();
    let denied = anonymous.repository(&n, true, false);
    let e = pull::push(&src, &denied, &img, &n.repo(), "1", &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("no basic auth credentials"), "{e}");
    let a2 = alice.clone();
    let client = Client::with_credentials(RegistryConfig::default(), move |key| {
        Ok((key == format!("127.0.0.1:{port}")).then(|| a2.clone()))
    });
    let repo = client.repository(&n, true, false);
    let (digest, _) = pull::push(&src, &repo, &img, &n.repo(), "1", &|_| {}).unwrap();
    assert_eq!(repo.tags().unwrap(), ["1"]);

    // pull_by_name takes the credentials from $DOCKER_CONFIG/config.json. (The only test in
    // this binary, so setting the environment races with nothing.)
    let docker = t.path().join("docker");
    DockerConfig::load_from(&docker)
        .unwrap()
        .store(&host, &alice)
        .unwrap();
    std::env::set_var("DOCKER_CONFIG", &docker);
    std::env::set_var("SKIFF_REGISTRIES_CONFIG", t.path().join("absent.json"));
    let dst = Store::open(t.path().join("b")).unwrap();
    let r = pull_by_name(&dst, &name, None, &|_| {}).unwrap();
    assert_eq!(r.image.id, img.id);
    assert_eq!(r.image.repo_digests, [format!("{}@{digest}", n.repo())]);
    let lower = &dst.layer_dirs(&r.image).unwrap()[0];
    assert_eq!(
        std::fs::read_to_string(lower.join("etc/hello")).unwrap(),
        "hello\n"
    );
}
