//! Third-party HTTP APIs stubbed with wiremock, reachable from inside the containers at the
//! host name the app is configured with.
//!
//! Each stub is a wiremock server listening on the Docker bridge's gateway address (a host
//! address every container can reach, never a public interface); the revision's containers get
//! an `/etc/hosts` entry mapping the stubbed host name to that address (the emulator-only
//! template annotation `cloudrun-emulator/host-aliases`).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use wiremock::MockServer;

use crate::error::HarnessError;

pub(crate) use emulator::controller::HOST_ALIASES_ANNOTATION;

/// The address containers on Docker's default bridge reach the host at: the network's
/// gateway, or (as Docker assigns it when none is configured) the subnet's first address.
pub(crate) fn bridge_gateway() -> Result<IpAddr, HarnessError> {
    let output = Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}} {{.Subnet}}{{end}}",
        ])
        .output()
        .map_err(HarnessError::io("running docker network inspect"))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let unknown = || HarnessError::Io {
        context: "finding the Docker bridge's gateway".into(),
        source: std::io::Error::other(format!("docker network inspect bridge said {text:?}")),
    };
    let mut fields = text.split_whitespace();
    let (first, second) = (fields.next(), fields.next());
    let (gateway, subnet) = match second {
        Some(subnet) => (first, Some(subnet)),
        None if first.is_some_and(|f| f.contains('/')) => (None, first),
        None => (first, None),
    };
    if let Some(ip) = gateway.and_then(|g| g.parse().ok()) {
        return Ok(ip);
    }
    let network: Ipv4Addr = subnet
        .and_then(|s| s.split_once('/'))
        .and_then(|(ip, _)| ip.parse().ok())
        .ok_or_else(unknown)?;
    Ok(IpAddr::V4(Ipv4Addr::from(u32::from(network) + 1)))
}

/// A wiremock server on `gateway`, on a free port.
pub(crate) async fn start(gateway: IpAddr) -> Result<MockServer, HarnessError> {
    let listener = std::net::TcpListener::bind((gateway, 0)).map_err(HarnessError::io(format!(
        "binding a stub server on the Docker bridge address {gateway}"
    )))?;
    Ok(MockServer::builder().listener(listener).start().await)
}

/// `api.example.com` → `STUB_API_EXAMPLE_COM`, the service-file variable holding its base URL.
pub(crate) fn variable(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("STUB_{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stub_variable_is_its_host_in_capitals() {
        assert_eq!(
            variable("api.payments-example.com"),
            "STUB_API_PAYMENTS_EXAMPLE_COM"
        );
    }
}
