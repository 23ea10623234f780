//! The engine's data files. The `espeak-ng` crate embeds them at compile time (phoneme tables,
//! voice files and the English dictionary: no install step, nothing downloaded), but its engine
//! reads them from a directory. So they are unpacked once, when the provider is built, into a
//! private temporary directory (about 3 MB) that lives as long as the provider and any synthesis
//! still running, and is removed when the last of them is dropped. A fresh directory per process
//! means replicas sharing a host never read files another process is rewriting, and a
//! system-wide `espeak-ng-data` (or `ESPEAK_DATA_PATH`) is never consulted: the voice is the same
//! on every machine.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Mutex,
};

use tempfile::TempDir;

/// The one bundled language. Adding a `bundled-data-<lang>` feature and its code here would
/// bring another.
pub(super) const LANGUAGE: &str = "en";
/// Files every synthesis reads.
const CORE_FILES: [&str; 5] = ["phontab", "phonindex", "phondata", "intonations", "en_dict"];

pub(super) struct BundledData {
    dir: TempDir,
    /// Held while checking for and restoring missing files, so only one request restores them.
    repair: Mutex<()>,
}

impl BundledData {
    /// Unpacks the embedded data (about 20 ms).
    pub(super) fn unpack() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("speechgate-espeak-ng-").tempdir()?;
        espeak_ng::install_bundled_language(dir.path(), LANGUAGE)?;
        Ok(Self { dir, repair: Mutex::new(()) })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Unpacks the data again if a file a synthesis with `variant` needs has gone: under a
    /// long-running gateway a temporary-file cleaner (systemd-tmpfiles on some distributions
    /// deletes files untouched for ten days) may have removed it. Blocking: call it from the
    /// blocking pool.
    pub(super) fn ensure(&self, variant: Option<&str>) -> io::Result<()> {
        let _repairing = self.repair.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let variant = variant.map(|v| PathBuf::from("voices").join("!v").join(v));
        let mut needed = CORE_FILES.iter().map(PathBuf::from).chain(variant);
        if needed.any(|file| !self.path().join(file).exists()) {
            espeak_ng::install_bundled_language(self.path(), LANGUAGE)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::BundledData;

    #[test]
    fn missing_files_are_unpacked_again() {
        let data = BundledData::unpack().unwrap();
        let phontab = data.path().join("phontab");
        let variant = data.path().join("voices").join("!v").join("f3");
        std::fs::remove_file(&phontab).unwrap();
        std::fs::remove_file(&variant).unwrap();
        data.ensure(Some("f3")).unwrap();
        assert!(phontab.exists() && variant.exists());
    }

    #[test]
    fn the_directory_goes_with_the_data() {
        let data = BundledData::unpack().unwrap();
        let dir = data.path().to_owned();
        assert!(dir.join("en_dict").exists());
        drop(data);
        assert!(!dir.exists());
    }
}
