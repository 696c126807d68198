//! `skiff-cri-bench [ITERATIONS]`: one private containerd whose CRI plugin has runc as its default
//! handler and skiff-runtime as the `skiff` handler; times the kubelet's calls for a one-container
//! pod (RunPodSandbox, CreateContainer, StartContainer, StopContainer, RemoveContainer,
//! StopPodSandbox, RemovePodSandbox) under each handler, alternating, and prints the mean and
//! median of each and `ratio skiff/runc = X` (means). Pods use the host network so that only the
//! runtimes differ (a CNI add/del costs both the same). Needs root, containerd, runc, and the
//! built skiff and skiff-runtime (`SKIFF_BIN_DIR`, default target/debug).

use skiff_tests::cri_node::{missing, CriNode, Runtimes};
use std::time::{Duration, Instant};

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ITERATIONS must be a number"))
        .unwrap_or(20);
    if let Some(why) = missing(Runtimes::SkiffHandler) {
        eprintln!("skiff-cri-bench: {why}");
        std::process::exit(1);
    }
    let node = CriNode::start(Runtimes::SkiffHandler, false);
    let mut c = node.client();
    let image = node.pause_image.clone();
    let handlers = ["skiff", "runc"];
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut steps = [[Duration::ZERO; 7]; 2];
    // Two warm-up rounds (page cache, first shim, seccomp cache), then the measured ones; the
    // order alternates so neither handler always runs right after the other.
    for i in 0..iterations + 2 {
        for k in 0..2 {
            let h = if i % 2 == 0 { k } else { 1 - k };
            let name = format!("bench-{}-{i}", handlers[h]);
            let pod = node.pod_config(&name, true);
            let mut ctr = skiff_tests::cri::pb::ContainerConfig {
                metadata: Some(skiff_tests::cri::pb::ContainerMetadata {
                    name: "main".into(),
                    attempt: 0,
                }),
                image: Some(skiff_tests::cri::image_spec(&image)),
                command: vec!["/bin/sleep".into(), "3600".into()],
                log_path: "main/0.log".into(),
                ..Default::default()
            };
            ctr.linux = Some(Default::default());
            let t = Instant::now();
            let mut lap = Instant::now();
            let mut split = |k: usize| {
                if i >= 2 {
                    steps[h][k] += lap.elapsed();
                }
                lap = Instant::now();
            };
            let mut run = || -> Result<(), skiff_tests::cri::Status> {
                let id = c.run_pod_sandbox(&pod, handlers[h])?;
                split(0);
                let cid = c.create_container(&id, &ctr, &pod)?;
                split(1);
                c.start_container(&cid)?;
                split(2);
                c.stop_container(&cid, 0)?;
                split(3);
                c.remove_container(&cid)?;
                split(4);
                c.stop_pod_sandbox(&id)?;
                split(5);
                c.remove_pod_sandbox(&id)?;
                split(6);
                Ok(())
            };
            if let Err(e) = run() {
                eprintln!(
                    "skiff-cri-bench: {} pod lifecycle failed: {e}\n{}",
                    handlers[h],
                    node.log_tail()
                );
                std::process::exit(1);
            }
            if i >= 2 {
                times[h].push(t.elapsed());
            }
        }
    }
    drop(c);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut means = [0.0; 2];
    for h in 0..2 {
        let v = &mut times[h];
        v.sort();
        let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
        means[h] = mean;
        println!(
            "{:<6} pod lifecycle: mean {:.1} ms, median {:.1} ms, min {:.1} ms ({} runs)",
            handlers[h],
            mean,
            ms(v[v.len() / 2]),
            ms(v[0]),
            v.len()
        );
    }
    println!("mean per call (ms)    skiff   runc");
    for (k, call) in [
        "RunPodSandbox",
        "CreateContainer",
        "StartContainer",
        "StopContainer",
        "RemoveContainer",
        "StopPodSandbox",
        "RemovePodSandbox",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "  {call:<18} {:>7.1} {:>7.1}",
            ms(steps[0][k]) / times[0].len() as f64,
            ms(steps[1][k]) / times[1].len() as f64
        );
    }
    println!("ratio skiff/runc = {:.2}", means[0] / means[1]);
    let left = node.shutdown();
    if !left.is_empty() {
        eprintln!("skiff-cri-bench: left behind: {left:?}");
        std::process::exit(1);
    }
}
