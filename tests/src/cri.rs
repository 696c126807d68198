//! A small client of the Kubernetes Container Runtime Interface (CRI, `runtime.v1`) for the tests:
//! the calls a kubelet makes for a pod, sent to containerd's CRI plugin as gRPC over its unix
//! socket. The messages are the subset of the CRI API the tests use, written from the CRI API
//! documentation with the same field numbers (fields left out are skipped by the decoder); the
//! transport is gRPC's framing (a 5-byte prefix per message, `grpc-status` in the trailers) over
//! the `h2` crate's HTTP/2 client.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// CRI `runtime.v1` messages (the subset the tests send and read).
pub mod pb {
    use std::collections::HashMap;

    /// `NamespaceMode.POD`: the namespace is the pod's.
    pub const NS_POD: i32 = 0;
    /// `NamespaceMode.CONTAINER`: a namespace of the container's own.
    pub const NS_CONTAINER: i32 = 1;
    /// `NamespaceMode.NODE`: the host's namespace.
    pub const NS_NODE: i32 = 2;
    /// `PodSandboxState.SANDBOX_READY`.
    pub const SANDBOX_READY: i32 = 0;
    /// `PodSandboxState.SANDBOX_NOTREADY`.
    pub const SANDBOX_NOTREADY: i32 = 1;
    /// `ContainerState.CONTAINER_CREATED`.
    pub const CONTAINER_CREATED: i32 = 0;
    /// `ContainerState.CONTAINER_RUNNING`.
    pub const CONTAINER_RUNNING: i32 = 1;
    /// `ContainerState.CONTAINER_EXITED`.
    pub const CONTAINER_EXITED: i32 = 2;
    /// `SecurityProfile.ProfileType.RuntimeDefault`.
    pub const PROFILE_RUNTIME_DEFAULT: i32 = 0;
    /// `SecurityProfile.ProfileType.Unconfined`.
    pub const PROFILE_UNCONFINED: i32 = 1;

    /// `VersionRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionRequest {
        /// The kubelet's runtime API version.
        #[prost(string, tag = "1")]
        pub version: String,
    }

    /// `VersionResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionResponse {
        /// The kubelet runtime API version.
        #[prost(string, tag = "1")]
        pub version: String,
        /// The runtime's name.
        #[prost(string, tag = "2")]
        pub runtime_name: String,
        /// The runtime's version.
        #[prost(string, tag = "3")]
        pub runtime_version: String,
        /// The runtime's API version.
        #[prost(string, tag = "4")]
        pub runtime_api_version: String,
    }

    /// `StatusRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {
        /// Ask for the `info` map too.
        #[prost(bool, tag = "1")]
        pub verbose: bool,
    }

    /// `RuntimeCondition`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RuntimeCondition {
        /// `RuntimeReady` or `NetworkReady`.
        #[prost(string, tag = "1")]
        pub r#type: String,
        /// Whether the condition holds.
        #[prost(bool, tag = "2")]
        pub status: bool,
        /// CamelCase reason.
        #[prost(string, tag = "3")]
        pub reason: String,
        /// Human-readable message.
        #[prost(string, tag = "4")]
        pub message: String,
    }

    /// `RuntimeStatus`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RuntimeStatus {
        /// The runtime's conditions.
        #[prost(message, repeated, tag = "1")]
        pub conditions: Vec<RuntimeCondition>,
    }

    /// `StatusResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        /// The conditions.
        #[prost(message, optional, tag = "1")]
        pub status: Option<RuntimeStatus>,
        /// JSON details (verbose only): the runtime's config, CNI state.
        #[prost(map = "string, string", tag = "2")]
        pub info: HashMap<String, String>,
    }

    /// `PodSandboxMetadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxMetadata {
        /// Pod name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Pod UID.
        #[prost(string, tag = "2")]
        pub uid: String,
        /// Pod namespace.
        #[prost(string, tag = "3")]
        pub namespace: String,
        /// Attempt number.
        #[prost(uint32, tag = "4")]
        pub attempt: u32,
    }

    /// `DNSConfig`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DnsConfig {
        /// Name servers.
        #[prost(string, repeated, tag = "1")]
        pub servers: Vec<String>,
        /// Search domains.
        #[prost(string, repeated, tag = "2")]
        pub searches: Vec<String>,
        /// resolv.conf options.
        #[prost(string, repeated, tag = "3")]
        pub options: Vec<String>,
    }

    /// `NamespaceOption`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamespaceOption {
        /// Network namespace mode (`NS_*`).
        #[prost(int32, tag = "1")]
        pub network: i32,
        /// PID namespace mode.
        #[prost(int32, tag = "2")]
        pub pid: i32,
        /// IPC namespace mode.
        #[prost(int32, tag = "3")]
        pub ipc: i32,
        /// Target container for `TARGET`.
        #[prost(string, tag = "4")]
        pub target_id: String,
    }

    /// `Int64Value`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Int64Value {
        /// The value.
        #[prost(int64, tag = "1")]
        pub value: i64,
    }

    /// `UInt64Value`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UInt64Value {
        /// The value.
        #[prost(uint64, tag = "1")]
        pub value: u64,
    }

    /// `SecurityProfile`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SecurityProfile {
        /// `PROFILE_*`.
        #[prost(int32, tag = "1")]
        pub profile_type: i32,
        /// Path of a localhost profile.
        #[prost(string, tag = "2")]
        pub localhost_ref: String,
    }

    /// `LinuxSandboxSecurityContext`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxSandboxSecurityContext {
        /// The pod's namespaces.
        #[prost(message, optional, tag = "1")]
        pub namespace_options: Option<NamespaceOption>,
        /// UID of the sandbox process.
        #[prost(message, optional, tag = "3")]
        pub run_as_user: Option<Int64Value>,
        /// Read-only root filesystem for the sandbox.
        #[prost(bool, tag = "4")]
        pub readonly_rootfs: bool,
        /// Whether privileged containers will run in the pod.
        #[prost(bool, tag = "6")]
        pub privileged: bool,
        /// Seccomp profile of the sandbox.
        #[prost(message, optional, tag = "9")]
        pub seccomp: Option<SecurityProfile>,
    }

    /// `LinuxPodSandboxConfig`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxPodSandboxConfig {
        /// Parent cgroup (cgroupfs syntax).
        #[prost(string, tag = "1")]
        pub cgroup_parent: String,
        /// Security attributes.
        #[prost(message, optional, tag = "2")]
        pub security_context: Option<LinuxSandboxSecurityContext>,
        /// Namespaced sysctls.
        #[prost(map = "string, string", tag = "3")]
        pub sysctls: HashMap<String, String>,
    }

    /// `PodSandboxConfig`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxConfig {
        /// Pod identity.
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<PodSandboxMetadata>,
        /// Hostname (empty with host network).
        #[prost(string, tag = "2")]
        pub hostname: String,
        /// Host directory of the containers' log files.
        #[prost(string, tag = "3")]
        pub log_directory: String,
        /// DNS settings.
        #[prost(message, optional, tag = "4")]
        pub dns_config: Option<DnsConfig>,
        /// Labels.
        #[prost(map = "string, string", tag = "6")]
        pub labels: HashMap<String, String>,
        /// Annotations.
        #[prost(map = "string, string", tag = "7")]
        pub annotations: HashMap<String, String>,
        /// Linux settings.
        #[prost(message, optional, tag = "8")]
        pub linux: Option<LinuxPodSandboxConfig>,
    }

    /// `RunPodSandboxRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxRequest {
        /// The pod.
        #[prost(message, optional, tag = "1")]
        pub config: Option<PodSandboxConfig>,
        /// RuntimeClass handler; empty for the default.
        #[prost(string, tag = "2")]
        pub runtime_handler: String,
    }

    /// `RunPodSandboxResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxResponse {
        /// The new sandbox's id.
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }

    /// `StopPodSandboxRequest`, `RemovePodSandboxRequest` (both carry only the id).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxIdRequest {
        /// The sandbox.
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }

    /// Every empty response (`StopPodSandboxResponse`, `StartContainerResponse`, …).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}

    /// `PodSandboxStatusRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxStatusRequest {
        /// The sandbox.
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
        /// Ask for `info` (JSON with the sandbox's pid, runtime, config).
        #[prost(bool, tag = "2")]
        pub verbose: bool,
    }

    /// `PodSandboxNetworkStatus`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxNetworkStatus {
        /// The pod's IP.
        #[prost(string, tag = "1")]
        pub ip: String,
    }

    /// `PodSandboxStatus`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxStatus {
        /// Sandbox id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// Pod identity.
        #[prost(message, optional, tag = "2")]
        pub metadata: Option<PodSandboxMetadata>,
        /// `SANDBOX_*`.
        #[prost(int32, tag = "3")]
        pub state: i32,
        /// Creation time (ns).
        #[prost(int64, tag = "4")]
        pub created_at: i64,
        /// Network status.
        #[prost(message, optional, tag = "5")]
        pub network: Option<PodSandboxNetworkStatus>,
        /// Labels.
        #[prost(map = "string, string", tag = "7")]
        pub labels: HashMap<String, String>,
        /// Annotations.
        #[prost(map = "string, string", tag = "8")]
        pub annotations: HashMap<String, String>,
        /// The handler it runs under.
        #[prost(string, tag = "9")]
        pub runtime_handler: String,
    }

    /// `PodSandboxStatusResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxStatusResponse {
        /// Status.
        #[prost(message, optional, tag = "1")]
        pub status: Option<PodSandboxStatus>,
        /// Verbose details (JSON values).
        #[prost(map = "string, string", tag = "2")]
        pub info: HashMap<String, String>,
    }

    /// `PodSandboxStateValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxStateValue {
        /// `SANDBOX_*`.
        #[prost(int32, tag = "1")]
        pub state: i32,
    }

    /// `PodSandboxFilter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxFilter {
        /// Sandbox id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// State.
        #[prost(message, optional, tag = "2")]
        pub state: Option<PodSandboxStateValue>,
        /// Labels that must match.
        #[prost(map = "string, string", tag = "3")]
        pub label_selector: HashMap<String, String>,
    }

    /// `ListPodSandboxRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListPodSandboxRequest {
        /// Filter.
        #[prost(message, optional, tag = "1")]
        pub filter: Option<PodSandboxFilter>,
    }

    /// `PodSandbox`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandbox {
        /// Id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// Pod identity.
        #[prost(message, optional, tag = "2")]
        pub metadata: Option<PodSandboxMetadata>,
        /// `SANDBOX_*`.
        #[prost(int32, tag = "3")]
        pub state: i32,
        /// Creation time (ns).
        #[prost(int64, tag = "4")]
        pub created_at: i64,
        /// Labels.
        #[prost(map = "string, string", tag = "5")]
        pub labels: HashMap<String, String>,
        /// Annotations.
        #[prost(map = "string, string", tag = "6")]
        pub annotations: HashMap<String, String>,
        /// Handler.
        #[prost(string, tag = "7")]
        pub runtime_handler: String,
    }

    /// `ListPodSandboxResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListPodSandboxResponse {
        /// The sandboxes.
        #[prost(message, repeated, tag = "1")]
        pub items: Vec<PodSandbox>,
    }

    /// `ContainerMetadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerMetadata {
        /// Container name in the pod.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Attempt number.
        #[prost(uint32, tag = "2")]
        pub attempt: u32,
    }

    /// `ImageSpec`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSpec {
        /// Image reference or id.
        #[prost(string, tag = "1")]
        pub image: String,
        /// Annotations.
        #[prost(map = "string, string", tag = "2")]
        pub annotations: HashMap<String, String>,
    }

    /// `KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// Key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `Mount`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mount {
        /// Path in the container.
        #[prost(string, tag = "1")]
        pub container_path: String,
        /// Path on the host.
        #[prost(string, tag = "2")]
        pub host_path: String,
        /// Read-only.
        #[prost(bool, tag = "3")]
        pub readonly: bool,
        /// SELinux relabel.
        #[prost(bool, tag = "4")]
        pub selinux_relabel: bool,
        /// `MountPropagation` (0 private).
        #[prost(int32, tag = "5")]
        pub propagation: i32,
    }

    /// `LinuxContainerResources`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxContainerResources {
        /// CFS period (µs).
        #[prost(int64, tag = "1")]
        pub cpu_period: i64,
        /// CFS quota (µs).
        #[prost(int64, tag = "2")]
        pub cpu_quota: i64,
        /// CPU shares.
        #[prost(int64, tag = "3")]
        pub cpu_shares: i64,
        /// Memory limit (bytes).
        #[prost(int64, tag = "4")]
        pub memory_limit_in_bytes: i64,
        /// OOM score adjustment.
        #[prost(int64, tag = "5")]
        pub oom_score_adj: i64,
        /// Allowed CPUs.
        #[prost(string, tag = "6")]
        pub cpuset_cpus: String,
        /// Allowed memory nodes.
        #[prost(string, tag = "7")]
        pub cpuset_mems: String,
        /// cgroup v2 files.
        #[prost(map = "string, string", tag = "9")]
        pub unified: HashMap<String, String>,
        /// Memory+swap limit (bytes).
        #[prost(int64, tag = "10")]
        pub memory_swap_limit_in_bytes: i64,
    }

    /// `Capability`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Capability {
        /// Capabilities to add (`NET_ADMIN`, `ALL`…).
        #[prost(string, repeated, tag = "1")]
        pub add_capabilities: Vec<String>,
        /// Capabilities to drop.
        #[prost(string, repeated, tag = "2")]
        pub drop_capabilities: Vec<String>,
    }

    /// `LinuxContainerSecurityContext`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxContainerSecurityContext {
        /// Capabilities to add/drop.
        #[prost(message, optional, tag = "1")]
        pub capabilities: Option<Capability>,
        /// Privileged.
        #[prost(bool, tag = "2")]
        pub privileged: bool,
        /// Namespaces (normally the pod's).
        #[prost(message, optional, tag = "3")]
        pub namespace_options: Option<NamespaceOption>,
        /// UID of the process.
        #[prost(message, optional, tag = "5")]
        pub run_as_user: Option<Int64Value>,
        /// User name of the process.
        #[prost(string, tag = "6")]
        pub run_as_username: String,
        /// Read-only root filesystem.
        #[prost(bool, tag = "7")]
        pub readonly_rootfs: bool,
        /// Supplementary groups.
        #[prost(int64, repeated, tag = "8")]
        pub supplemental_groups: Vec<i64>,
        /// no_new_privs.
        #[prost(bool, tag = "11")]
        pub no_new_privs: bool,
        /// GID of the process.
        #[prost(message, optional, tag = "12")]
        pub run_as_group: Option<Int64Value>,
        /// Seccomp profile.
        #[prost(message, optional, tag = "15")]
        pub seccomp: Option<SecurityProfile>,
    }

    /// `LinuxContainerConfig`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxContainerConfig {
        /// Resources.
        #[prost(message, optional, tag = "1")]
        pub resources: Option<LinuxContainerResources>,
        /// Security context.
        #[prost(message, optional, tag = "2")]
        pub security_context: Option<LinuxContainerSecurityContext>,
    }

    /// `ContainerConfig`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerConfig {
        /// Container identity in the pod.
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<ContainerMetadata>,
        /// Image.
        #[prost(message, optional, tag = "2")]
        pub image: Option<ImageSpec>,
        /// Entrypoint.
        #[prost(string, repeated, tag = "3")]
        pub command: Vec<String>,
        /// Arguments.
        #[prost(string, repeated, tag = "4")]
        pub args: Vec<String>,
        /// Working directory.
        #[prost(string, tag = "5")]
        pub working_dir: String,
        /// Environment.
        #[prost(message, repeated, tag = "6")]
        pub envs: Vec<KeyValue>,
        /// Mounts.
        #[prost(message, repeated, tag = "7")]
        pub mounts: Vec<Mount>,
        /// Labels.
        #[prost(map = "string, string", tag = "9")]
        pub labels: HashMap<String, String>,
        /// Annotations.
        #[prost(map = "string, string", tag = "10")]
        pub annotations: HashMap<String, String>,
        /// Log file, relative to the pod's log directory.
        #[prost(string, tag = "11")]
        pub log_path: String,
        /// Keep stdin open.
        #[prost(bool, tag = "12")]
        pub stdin: bool,
        /// Close stdin after the first attach.
        #[prost(bool, tag = "13")]
        pub stdin_once: bool,
        /// Allocate a terminal.
        #[prost(bool, tag = "14")]
        pub tty: bool,
        /// Linux settings.
        #[prost(message, optional, tag = "15")]
        pub linux: Option<LinuxContainerConfig>,
    }

    /// `CreateContainerRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerRequest {
        /// The pod.
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
        /// The container.
        #[prost(message, optional, tag = "2")]
        pub config: Option<ContainerConfig>,
        /// The pod's config again.
        #[prost(message, optional, tag = "3")]
        pub sandbox_config: Option<PodSandboxConfig>,
    }

    /// `CreateContainerResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerResponse {
        /// The new container's id.
        #[prost(string, tag = "1")]
        pub container_id: String,
    }

    /// `StartContainerRequest`, `RemoveContainerRequest`, `ContainerStatsRequest` (the id only).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerIdRequest {
        /// The container.
        #[prost(string, tag = "1")]
        pub container_id: String,
    }

    /// `StopContainerRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StopContainerRequest {
        /// The container.
        #[prost(string, tag = "1")]
        pub container_id: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[prost(int64, tag = "2")]
        pub timeout: i64,
    }

    /// `ContainerStateValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStateValue {
        /// `CONTAINER_*`.
        #[prost(int32, tag = "1")]
        pub state: i32,
    }

    /// `ContainerFilter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerFilter {
        /// Container id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// State.
        #[prost(message, optional, tag = "2")]
        pub state: Option<ContainerStateValue>,
        /// Pod.
        #[prost(string, tag = "3")]
        pub pod_sandbox_id: String,
        /// Labels that must match.
        #[prost(map = "string, string", tag = "4")]
        pub label_selector: HashMap<String, String>,
    }

    /// `ListContainersRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersRequest {
        /// Filter.
        #[prost(message, optional, tag = "1")]
        pub filter: Option<ContainerFilter>,
    }

    /// `Container`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Container {
        /// Id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// Pod.
        #[prost(string, tag = "2")]
        pub pod_sandbox_id: String,
        /// Identity in the pod.
        #[prost(message, optional, tag = "3")]
        pub metadata: Option<ContainerMetadata>,
        /// Image.
        #[prost(message, optional, tag = "4")]
        pub image: Option<ImageSpec>,
        /// Image digest reference.
        #[prost(string, tag = "5")]
        pub image_ref: String,
        /// `CONTAINER_*`.
        #[prost(int32, tag = "6")]
        pub state: i32,
        /// Creation time (ns).
        #[prost(int64, tag = "7")]
        pub created_at: i64,
        /// Labels.
        #[prost(map = "string, string", tag = "8")]
        pub labels: HashMap<String, String>,
    }

    /// `ListContainersResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersResponse {
        /// The containers.
        #[prost(message, repeated, tag = "1")]
        pub containers: Vec<Container>,
    }

    /// `ContainerStatusRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStatusRequest {
        /// The container.
        #[prost(string, tag = "1")]
        pub container_id: String,
        /// Ask for `info` (JSON with pid, runtime, the OCI spec).
        #[prost(bool, tag = "2")]
        pub verbose: bool,
    }

    /// `ContainerStatus`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStatus {
        /// Id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// Identity in the pod.
        #[prost(message, optional, tag = "2")]
        pub metadata: Option<ContainerMetadata>,
        /// `CONTAINER_*`.
        #[prost(int32, tag = "3")]
        pub state: i32,
        /// Creation time (ns).
        #[prost(int64, tag = "4")]
        pub created_at: i64,
        /// Start time (ns).
        #[prost(int64, tag = "5")]
        pub started_at: i64,
        /// Finish time (ns).
        #[prost(int64, tag = "6")]
        pub finished_at: i64,
        /// Exit code.
        #[prost(int32, tag = "7")]
        pub exit_code: i32,
        /// Image.
        #[prost(message, optional, tag = "8")]
        pub image: Option<ImageSpec>,
        /// Image digest reference.
        #[prost(string, tag = "9")]
        pub image_ref: String,
        /// Why it is in this state (`Completed`, `Error`, `OOMKilled`).
        #[prost(string, tag = "10")]
        pub reason: String,
        /// Details.
        #[prost(string, tag = "11")]
        pub message: String,
        /// Labels.
        #[prost(map = "string, string", tag = "12")]
        pub labels: HashMap<String, String>,
        /// Annotations.
        #[prost(map = "string, string", tag = "13")]
        pub annotations: HashMap<String, String>,
        /// Mounts.
        #[prost(message, repeated, tag = "14")]
        pub mounts: Vec<Mount>,
        /// Host path of the log file.
        #[prost(string, tag = "15")]
        pub log_path: String,
    }

    /// `ContainerStatusResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStatusResponse {
        /// Status.
        #[prost(message, optional, tag = "1")]
        pub status: Option<ContainerStatus>,
        /// Verbose details (JSON values).
        #[prost(map = "string, string", tag = "2")]
        pub info: HashMap<String, String>,
    }

    /// `UpdateContainerResourcesRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UpdateContainerResourcesRequest {
        /// The container.
        #[prost(string, tag = "1")]
        pub container_id: String,
        /// The new resources.
        #[prost(message, optional, tag = "2")]
        pub linux: Option<LinuxContainerResources>,
    }

    /// `ExecSyncRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExecSyncRequest {
        /// The container.
        #[prost(string, tag = "1")]
        pub container_id: String,
        /// Command line.
        #[prost(string, repeated, tag = "2")]
        pub cmd: Vec<String>,
        /// Seconds before the command is killed (0: none).
        #[prost(int64, tag = "3")]
        pub timeout: i64,
    }

    /// `ExecSyncResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExecSyncResponse {
        /// Its stdout.
        #[prost(bytes = "vec", tag = "1")]
        pub stdout: Vec<u8>,
        /// Its stderr.
        #[prost(bytes = "vec", tag = "2")]
        pub stderr: Vec<u8>,
        /// Its exit code.
        #[prost(int32, tag = "3")]
        pub exit_code: i32,
    }

    /// `ContainerAttributes`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerAttributes {
        /// Id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// Identity in the pod.
        #[prost(message, optional, tag = "2")]
        pub metadata: Option<ContainerMetadata>,
    }

    /// `CpuUsage`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CpuUsage {
        /// When sampled (ns).
        #[prost(int64, tag = "1")]
        pub timestamp: i64,
        /// Cumulative CPU time (ns).
        #[prost(message, optional, tag = "2")]
        pub usage_core_nano_seconds: Option<UInt64Value>,
    }

    /// `MemoryUsage`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MemoryUsage {
        /// When sampled (ns).
        #[prost(int64, tag = "1")]
        pub timestamp: i64,
        /// Working set (bytes).
        #[prost(message, optional, tag = "2")]
        pub working_set_bytes: Option<UInt64Value>,
        /// Limit minus working set.
        #[prost(message, optional, tag = "3")]
        pub available_bytes: Option<UInt64Value>,
        /// Total usage (bytes).
        #[prost(message, optional, tag = "4")]
        pub usage_bytes: Option<UInt64Value>,
    }

    /// `FilesystemIdentifier`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FilesystemIdentifier {
        /// Mount point.
        #[prost(string, tag = "1")]
        pub mountpoint: String,
    }

    /// `FilesystemUsage`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FilesystemUsage {
        /// When sampled (ns).
        #[prost(int64, tag = "1")]
        pub timestamp: i64,
        /// Which filesystem.
        #[prost(message, optional, tag = "2")]
        pub fs_id: Option<FilesystemIdentifier>,
        /// Bytes used.
        #[prost(message, optional, tag = "3")]
        pub used_bytes: Option<UInt64Value>,
        /// Inodes used.
        #[prost(message, optional, tag = "4")]
        pub inodes_used: Option<UInt64Value>,
    }

    /// `ContainerStats`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStats {
        /// Which container.
        #[prost(message, optional, tag = "1")]
        pub attributes: Option<ContainerAttributes>,
        /// CPU.
        #[prost(message, optional, tag = "2")]
        pub cpu: Option<CpuUsage>,
        /// Memory.
        #[prost(message, optional, tag = "3")]
        pub memory: Option<MemoryUsage>,
        /// Writable layer.
        #[prost(message, optional, tag = "4")]
        pub writable_layer: Option<FilesystemUsage>,
    }

    /// `ContainerStatsResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerStatsResponse {
        /// The stats.
        #[prost(message, optional, tag = "1")]
        pub stats: Option<ContainerStats>,
    }

    /// `PullImageRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PullImageRequest {
        /// Image to pull.
        #[prost(message, optional, tag = "1")]
        pub image: Option<ImageSpec>,
        /// The pod it is pulled for.
        #[prost(message, optional, tag = "3")]
        pub sandbox_config: Option<PodSandboxConfig>,
    }

    /// `PullImageResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PullImageResponse {
        /// Image id or digest.
        #[prost(string, tag = "1")]
        pub image_ref: String,
    }

    /// `ImageStatusRequest`, `RemoveImageRequest` (the image only).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageRequest {
        /// The image.
        #[prost(message, optional, tag = "1")]
        pub image: Option<ImageSpec>,
    }

    /// `Image`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        /// Id.
        #[prost(string, tag = "1")]
        pub id: String,
        /// Tags.
        #[prost(string, repeated, tag = "2")]
        pub repo_tags: Vec<String>,
        /// Digests.
        #[prost(string, repeated, tag = "3")]
        pub repo_digests: Vec<String>,
        /// Size (bytes).
        #[prost(uint64, tag = "4")]
        pub size: u64,
    }

    /// `ImageStatusResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageStatusResponse {
        /// The image, absent when unknown.
        #[prost(message, optional, tag = "1")]
        pub image: Option<Image>,
    }
}

/// A gRPC error from the server (`grpc-status` ≠ 0) or the transport (code -1).
#[derive(Debug, Clone)]
pub struct Status {
    /// gRPC status code (2 unknown, 5 not found, …; -1 transport).
    pub code: i32,
    /// `grpc-message`, percent-decoded.
    pub message: String,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "grpc status {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

fn transport(what: &str, e: impl std::fmt::Display) -> Status {
    Status {
        code: -1,
        message: format!("{what}: {e}"),
    }
}

/// Decodes `%XX` escapes (gRPC percent-encodes `grpc-message`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection to a CRI server (containerd's socket); every call blocks until it answers.
pub struct Client {
    rt: tokio::runtime::Runtime,
    send: h2::client::SendRequest<Bytes>,
    /// Per-call deadline.
    pub timeout: Duration,
}

const RUNTIME: &str = "runtime.v1.RuntimeService";
const IMAGE: &str = "runtime.v1.ImageService";

impl Client {
    /// Connects to the CRI server on the unix socket `sock`.
    pub fn connect(sock: &Path) -> Result<Client, Status> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| transport("tokio runtime", e))?;
        let send = rt.block_on(async {
            let io = tokio::net::UnixStream::connect(sock)
                .await
                .map_err(|e| transport(&format!("connect {}", sock.display()), e))?;
            let (send, conn) = h2::client::handshake(io)
                .await
                .map_err(|e| transport("http/2 handshake", e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, Status>(send)
        })?;
        Ok(Client {
            rt,
            send,
            timeout: Duration::from_secs(60),
        })
    }

    /// One unary gRPC call: `/{service}/{method}` with `req`, decoding the answer as `R`.
    pub fn call<Q: prost::Message, R: prost::Message + Default>(
        &mut self,
        service: &str,
        method: &str,
        req: &Q,
    ) -> Result<R, Status> {
        let mut body = BytesMut::with_capacity(5 + req.encoded_len());
        body.extend_from_slice(&[0]);
        body.extend_from_slice(&(req.encoded_len() as u32).to_be_bytes());
        req.encode(&mut body)
            .map_err(|e| transport("encode request", e))?;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost/{service}/{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| transport("request", e))?;
        let send = self.send.clone();
        let timeout = self.timeout;
        let what = format!("{service}/{method}");
        let fut = async move {
            let mut send = send.ready().await.map_err(|e| transport("connection", e))?;
            let (resp, mut stream) = send
                .send_request(request, false)
                .map_err(|e| transport("send request", e))?;
            stream
                .send_data(body.freeze(), true)
                .map_err(|e| transport("send body", e))?;
            let resp = resp.await.map_err(|e| transport("response", e))?;
            let (head, mut recv) = resp.into_parts();
            if head.status != http::StatusCode::OK {
                return Err(transport("http status", head.status));
            }
            let mut data = BytesMut::new();
            while let Some(chunk) = recv.data().await {
                let chunk = chunk.map_err(|e| transport("response body", e))?;
                let _ = recv.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            // A trailers-only answer (an error) carries grpc-status in the headers.
            let trailers = recv
                .trailers()
                .await
                .map_err(|e| transport("trailers", e))?
                .unwrap_or_default();
            let get = |k: &str| {
                trailers
                    .get(k)
                    .or_else(|| head.headers.get(k))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let code: i32 = get("grpc-status").and_then(|s| s.parse().ok()).unwrap_or(2);
            if code != 0 {
                return Err(Status {
                    code,
                    message: percent_decode(&get("grpc-message").unwrap_or_default()),
                });
            }
            Ok::<_, Status>(data.freeze())
        };
        let mut data = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, fut).await })
            .map_err(|_| transport(&what, format!("no answer within {timeout:?}")))??;
        if data.len() < 5 {
            return Err(transport(&what, "short response"));
        }
        let compressed = data.get_u8();
        let len = data.get_u32() as usize;
        if compressed != 0 || data.len() < len {
            return Err(transport(&what, "compressed or truncated message"));
        }
        R::decode(&data[..len]).map_err(|e| transport(&format!("decode {what}"), e))
    }

    /// `RuntimeService.Version`.
    pub fn version(&mut self) -> Result<pb::VersionResponse, Status> {
        let req = pb::VersionRequest {
            version: "v1".into(),
        };
        self.call(RUNTIME, "Version", &req)
    }

    /// `RuntimeService.Status` (verbose).
    pub fn status(&mut self) -> Result<pb::StatusResponse, Status> {
        self.call(RUNTIME, "Status", &pb::StatusRequest { verbose: true })
    }

    /// `RuntimeService.RunPodSandbox` under `handler` ("" for the default); returns the id.
    pub fn run_pod_sandbox(
        &mut self,
        config: &pb::PodSandboxConfig,
        handler: &str,
    ) -> Result<String, Status> {
        let req = pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        let r: pb::RunPodSandboxResponse = self.call(RUNTIME, "RunPodSandbox", &req)?;
        Ok(r.pod_sandbox_id)
    }

    /// `RuntimeService.StopPodSandbox`.
    pub fn stop_pod_sandbox(&mut self, id: &str) -> Result<(), Status> {
        let req = pb::PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
        };
        self.call::<_, pb::Empty>(RUNTIME, "StopPodSandbox", &req)
            .map(|_| ())
    }

    /// `RuntimeService.RemovePodSandbox`.
    pub fn remove_pod_sandbox(&mut self, id: &str) -> Result<(), Status> {
        let req = pb::PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
        };
        self.call::<_, pb::Empty>(RUNTIME, "RemovePodSandbox", &req)
            .map(|_| ())
    }

    /// `RuntimeService.PodSandboxStatus` (verbose).
    pub fn pod_sandbox_status(&mut self, id: &str) -> Result<pb::PodSandboxStatusResponse, Status> {
        let req = pb::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        };
        self.call(RUNTIME, "PodSandboxStatus", &req)
    }

    /// `RuntimeService.ListPodSandbox` with `filter`.
    pub fn list_pod_sandbox(
        &mut self,
        filter: pb::PodSandboxFilter,
    ) -> Result<Vec<pb::PodSandbox>, Status> {
        let req = pb::ListPodSandboxRequest {
            filter: Some(filter),
        };
        let r: pb::ListPodSandboxResponse = self.call(RUNTIME, "ListPodSandbox", &req)?;
        Ok(r.items)
    }

    /// `RuntimeService.CreateContainer`; returns the id.
    pub fn create_container(
        &mut self,
        pod: &str,
        config: &pb::ContainerConfig,
        sandbox: &pb::PodSandboxConfig,
    ) -> Result<String, Status> {
        let req = pb::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config.clone()),
            sandbox_config: Some(sandbox.clone()),
        };
        let r: pb::CreateContainerResponse = self.call(RUNTIME, "CreateContainer", &req)?;
        Ok(r.container_id)
    }

    /// `RuntimeService.StartContainer`.
    pub fn start_container(&mut self, id: &str) -> Result<(), Status> {
        let req = pb::ContainerIdRequest {
            container_id: id.into(),
        };
        self.call::<_, pb::Empty>(RUNTIME, "StartContainer", &req)
            .map(|_| ())
    }

    /// `RuntimeService.StopContainer` with `timeout` seconds of grace.
    pub fn stop_container(&mut self, id: &str, timeout: i64) -> Result<(), Status> {
        let req = pb::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.call::<_, pb::Empty>(RUNTIME, "StopContainer", &req)
            .map(|_| ())
    }

    /// `RuntimeService.RemoveContainer`.
    pub fn remove_container(&mut self, id: &str) -> Result<(), Status> {
        let req = pb::ContainerIdRequest {
            container_id: id.into(),
        };
        self.call::<_, pb::Empty>(RUNTIME, "RemoveContainer", &req)
            .map(|_| ())
    }

    /// `RuntimeService.ListContainers` with `filter`.
    pub fn list_containers(
        &mut self,
        filter: pb::ContainerFilter,
    ) -> Result<Vec<pb::Container>, Status> {
        let req = pb::ListContainersRequest {
            filter: Some(filter),
        };
        let r: pb::ListContainersResponse = self.call(RUNTIME, "ListContainers", &req)?;
        Ok(r.containers)
    }

    /// `RuntimeService.ContainerStatus` (verbose).
    pub fn container_status(&mut self, id: &str) -> Result<pb::ContainerStatusResponse, Status> {
        let req = pb::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        self.call(RUNTIME, "ContainerStatus", &req)
    }

    /// `RuntimeService.UpdateContainerResources`.
    pub fn update_container_resources(
        &mut self,
        id: &str,
        linux: pb::LinuxContainerResources,
    ) -> Result<(), Status> {
        let req = pb::UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(linux),
        };
        self.call::<_, pb::Empty>(RUNTIME, "UpdateContainerResources", &req)
            .map(|_| ())
    }

    /// `RuntimeService.ExecSync`.
    pub fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<pb::ExecSyncResponse, Status> {
        let req = pb::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        };
        self.call(RUNTIME, "ExecSync", &req)
    }

    /// `RuntimeService.ContainerStats`.
    pub fn container_stats(&mut self, id: &str) -> Result<pb::ContainerStats, Status> {
        let req = pb::ContainerIdRequest {
            container_id: id.into(),
        };
        let r: pb::ContainerStatsResponse = self.call(RUNTIME, "ContainerStats", &req)?;
        r.stats
            .ok_or_else(|| transport("ContainerStats", "no stats in the answer"))
    }

    /// `ImageService.PullImage`; returns the image reference.
    pub fn pull_image(
        &mut self,
        image: &str,
        sandbox: Option<&pb::PodSandboxConfig>,
    ) -> Result<String, Status> {
        let req = pb::PullImageRequest {
            image: Some(image_spec(image)),
            sandbox_config: sandbox.cloned(),
        };
        let r: pb::PullImageResponse = self.call(IMAGE, "PullImage", &req)?;
        Ok(r.image_ref)
    }

    /// `ImageService.ImageStatus`: the image, `None` when the server does not have it.
    pub fn image_status(&mut self, image: &str) -> Result<Option<pb::Image>, Status> {
        let req = pb::ImageRequest {
            image: Some(image_spec(image)),
        };
        let r: pb::ImageStatusResponse = self.call(IMAGE, "ImageStatus", &req)?;
        Ok(r.image)
    }

    /// `ImageService.RemoveImage`.
    pub fn remove_image(&mut self, image: &str) -> Result<(), Status> {
        let req = pb::ImageRequest {
            image: Some(image_spec(image)),
        };
        self.call::<_, pb::Empty>(IMAGE, "RemoveImage", &req)
            .map(|_| ())
    }
}

/// An `ImageSpec` naming `image`.
pub fn image_spec(image: &str) -> pb::ImageSpec {
    pb::ImageSpec {
        image: image.into(),
        annotations: HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn messages_use_the_cri_field_numbers() {
        // VersionRequest{version: "v1"}: field 1, length-delimited.
        let v = pb::VersionRequest {
            version: "v1".into(),
        };
        assert_eq!(v.encode_to_vec(), b"\x0a\x02v1");
        // StopContainerRequest{container_id: "c", timeout: 2}: fields 1 and 2 (varint).
        let s = pb::StopContainerRequest {
            container_id: "c".into(),
            timeout: 2,
        };
        assert_eq!(s.encode_to_vec(), b"\x0a\x01c\x10\x02");
        // RunPodSandboxRequest.runtime_handler is field 2; the config's linux part is field 8.
        let r = pb::RunPodSandboxRequest {
            config: Some(pb::PodSandboxConfig {
                linux: Some(pb::LinuxPodSandboxConfig {
                    cgroup_parent: "/p".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            runtime_handler: "skiff".into(),
        };
        assert_eq!(
            r.encode_to_vec(),
            b"\x0a\x06\x42\x04\x0a\x02/p\x12\x05skiff".to_vec()
        );
        // Fields a reader does not know (a newer server's) are skipped.
        let mut with_extra = v.encode_to_vec();
        with_extra.extend_from_slice(b"\xa2\x06\x01x");
        assert_eq!(
            pb::VersionResponse::decode(&with_extra[..])
                .unwrap()
                .version,
            "v1"
        );
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("no%20such%20image"), "no such image");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
