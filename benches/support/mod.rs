//! What `benches/real_sessions.rs` runs on: the daemon as a child process
//! ([`process`]) and the report's plumbing ([`report`]). (`benches/daemon.rs` keeps
//! copies of its own of some of these.)

pub mod process;
pub mod report;

pub const API_KEY: &str = "bench-key-3f9c2a7e5b1d4c608e7f9a0b1c2d3e4f";

/// The least-squares slope of `y` over `x`.
pub fn least_squares_slope(points: &[(usize, u64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        sxy += (x as f64 - mx) * (y as f64 - my);
        sxx += (x as f64 - mx).powi(2);
    }
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

pub fn mib(bytes: f64) -> f64 {
    bytes / (1u64 << 20) as f64
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}
