//! Google Cloud regions and zones, the vocabulary every regional API validates against.

/// Regions the emulator accepts, as Google names them.
pub const REGIONS: &[&str] = &[
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-southwest1",
    "europe-west1",
    "europe-west10",
    "europe-west12",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
];

/// Multi-region locations some APIs (Artifact Registry) accept besides regions.
pub const MULTI_REGIONS: &[&str] = &["asia", "europe", "us"];

/// Whether `name` is a region.
pub fn is_region(name: &str) -> bool {
    REGIONS.contains(&name)
}

/// The zones of a region: `a`, `b`, `c`, plus `f` in us-central1, as in Compute Engine.
pub fn zones(region: &str) -> Vec<String> {
    let suffixes: &[&str] = if region == "us-central1" {
        &["a", "b", "c", "f"]
    } else {
        &["a", "b", "c"]
    };
    suffixes.iter().map(|s| format!("{region}-{s}")).collect()
}

/// The region of a zone, if the zone exists.
pub fn region_of_zone(zone: &str) -> Option<&'static str> {
    let (region, _) = zone.rsplit_once('-')?;
    let region = REGIONS.iter().find(|r| **r == region)?;
    zones(region).iter().any(|z| z == zone).then_some(*region)
}
