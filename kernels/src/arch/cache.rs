//! Cache sizes of the CPU, used to derive GEMM block sizes and by `axonal info`.

/// Data-cache sizes in bytes of one core (L1d, L2) and of the largest shared level (L3).
/// A level the system does not report is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    pub l1d: Option<usize>,
    pub l2: Option<usize>,
    pub l3: Option<usize>,
}

impl CacheSizes {
    /// Sizes read once from the operating system (Linux sysfs); `None` where unknown.
    pub fn detect() -> CacheSizes {
        static DETECTED: std::sync::OnceLock<CacheSizes> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(read_sysfs)
    }

    /// L1d, or the 32 KiB that every x86_64 and aarch64 core of the last decade has.
    pub fn l1d_or_default(&self) -> usize {
        self.l1d.unwrap_or(32 << 10)
    }

    /// L2, or a conservative 256 KiB.
    pub fn l2_or_default(&self) -> usize {
        self.l2.unwrap_or(256 << 10)
    }

    /// L3, or a conservative 4 MiB.
    pub fn l3_or_default(&self) -> usize {
        self.l3.unwrap_or(4 << 20)
    }
}

fn read_sysfs() -> CacheSizes {
    let mut sizes = CacheSizes {
        l1d: None,
        l2: None,
        l3: None,
    };
    let base = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let Ok(entries) = std::fs::read_dir(base) else {
        return sizes;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        if kind.trim() == "Instruction" {
            continue;
        }
        let Some(bytes) = parse_size(size.trim()) else {
            continue;
        };
        match level.trim() {
            "1" => sizes.l1d = Some(bytes),
            "2" => sizes.l2 = Some(bytes),
            "3" => sizes.l3 = Some(bytes),
            _ => {}
        }
    }
    sizes
}

/// Parses sysfs sizes such as `32K`, `1024K`, `32M` or `512`.
fn parse_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let value: usize = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return None,
    };
    value.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn parses_sysfs_sizes() {
        assert_eq!(parse_size("32K"), Some(32 << 10));
        assert_eq!(parse_size("32768K"), Some(32 << 20));
        assert_eq!(parse_size("4M"), Some(4 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size(""), None);
    }
}
