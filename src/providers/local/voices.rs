//! The voice catalogue, read from the bundled data once at start.
//!
//! eSpeak NG has two axes: an *accent* (a language voice file: `en-us`, `en-gb-scotland`...) and
//! an optional *variant* that reshapes the voice (pitch, formants, echo: `f3`, `m3`, `whisper`...).
//! A voice id is `accent` or `accent+variant`, as eSpeak NG itself writes it (`en-us+f3`), so any
//! combination works. The catalogue lists every accent and every variant on `en-us`, rather than
//! every product of the two.
//!
//! Left out: `en-shaw` (it reads the Shavian alphabet; on Latin text it is plain `en-gb`) and
//! variants whose settings this engine does not apply yet (the `klatt` synthesiser family,
//! `caleb`, `fast`): they would sound exactly like the accent alone. The engine silently ignores
//! an unknown variant, so ids are checked here, not by the engine.

use std::path::Path;

use espeak_ng::voices::{self, VariantParams};

use crate::providers::ProviderVoice;

/// Accent the listed variants are shown on.
const VARIANT_BASE: &str = "en-us";
/// What a bare `en` means to eSpeak NG: British English.
const EN_ALIAS: (&str, &str) = ("en", "en-gb");
/// Accents that are not voices for ordinary text.
const EXCLUDED_ACCENTS: [&str; 1] = ["en-shaw"];

struct Accent {
    /// Lower-case tag, e.g. `en-gb-x-rp`.
    id: String,
    name: String,
}

struct Variant {
    /// The data file's name, which is also what the engine expects (case matters: `Alex`).
    file: String,
    name: String,
    gender: Option<&'static str>,
}

pub(super) struct Catalogue {
    accents: Vec<Accent>,
    variants: Vec<Variant>,
}

impl Catalogue {
    pub(super) fn load(data_dir: &Path) -> Self {
        let accents = voices::list_voices(data_dir)
            .into_iter()
            .map(|v| Accent { id: v.language.to_ascii_lowercase(), name: v.name })
            .filter(|a| primary_subtag(&a.id) == super::data::LANGUAGE && !EXCLUDED_ACCENTS.contains(&a.id.as_str()))
            .collect();
        let mut variants: Vec<Variant> = std::fs::read_dir(data_dir.join("voices").join("!v"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter_map(|file| {
                let params = voices::load_variant(data_dir, &file)?;
                audible(&params).then(|| Variant { name: params.name.clone(), gender: gender(params.gender), file })
            })
            .collect();
        variants.sort_by_key(|v| v.file.to_lowercase());
        Self { accents, variants }
    }

    /// The engine's voice name for a voice id, or `None` when it is not in the catalogue. Case
    /// and `_` for `-` do not matter (`en_US+F3` is `en-us+f3`).
    pub(super) fn resolve(&self, id: &str) -> Option<String> {
        let (accent, variant) = match id.trim().split_once('+') {
            Some((accent, variant)) => (accent, Some(variant)),
            None => (id.trim(), None),
        };
        let accent = accent.replace('_', "-").to_ascii_lowercase();
        let accent = if accent == EN_ALIAS.0 { EN_ALIAS.1.to_owned() } else { accent };
        let accent = &self.accents.iter().find(|a| a.id == accent)?.id;
        match variant {
            None => Some(accent.clone()),
            Some(variant) => {
                let variant = self.variants.iter().find(|v| v.file.eq_ignore_ascii_case(variant))?;
                Some(format!("{accent}+{}", variant.file))
            }
        }
    }

    pub(super) fn voices(&self) -> Vec<ProviderVoice> {
        let accents = self.accents.iter().map(|a| ProviderVoice {
            id: a.id.clone(),
            name: a.name.clone(),
            gender: None,
            language: Some(bcp47(&a.id)),
            description: Some(format!("eSpeak NG accent; add a variant as {}+f3", a.id)),
        });
        let base = self.accents.iter().find(|a| a.id == VARIANT_BASE);
        let variants = base.into_iter().flat_map(|base| {
            self.variants.iter().map(move |v| ProviderVoice {
                id: format!("{}+{}", base.id, v.file),
                name: v.name.clone(),
                gender: v.gender.map(str::to_owned),
                language: Some(bcp47(&base.id)),
                description: Some(format!("eSpeak NG variant {:?} on {}; any accent takes it", v.file, base.name)),
            })
        });
        accents.chain(variants).collect()
    }
}

/// Whether a variant changes anything this engine renders.
fn audible(params: &VariantParams) -> bool {
    params.pitch.is_some()
        || !params.formants.is_empty()
        || params.echo.is_some()
        || params.flutter.is_some()
        || params.tone.is_some()
        || !params.stress_amp.is_empty()
}

fn gender(code: char) -> Option<&'static str> {
    match code {
        'M' => Some("male"),
        'F' => Some("female"),
        _ => None,
    }
}

fn primary_subtag(tag: &str) -> &str {
    tag.split('-').next().unwrap_or(tag)
}

/// `en-gb-x-rp` → `en-GB-x-rp`: region subtags upper-case, as BCP 47 writes them.
fn bcp47(tag: &str) -> String {
    let mut private = false;
    let parts: Vec<String> = tag
        .split('-')
        .enumerate()
        .map(|(i, part)| {
            private |= part == "x";
            if i > 0 && !private && part.len() == 2 {
                part.to_ascii_uppercase()
            } else {
                part.to_owned()
            }
        })
        .collect();
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::bcp47;

    #[test]
    fn tags_are_written_the_bcp47_way() {
        assert_eq!(bcp47("en-us"), "en-US");
        assert_eq!(bcp47("en-gb-x-rp"), "en-GB-x-rp");
        assert_eq!(bcp47("en-029"), "en-029");
        assert_eq!(bcp47("en-gb-scotland"), "en-GB-scotland");
        assert_eq!(bcp47("en"), "en");
    }
}
