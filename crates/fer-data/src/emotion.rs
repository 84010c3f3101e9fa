//! The two enumerations every FER2013 row carries: its emotion label and its split.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of FER2013's seven emotion classes, numbered as in the dataset (0 Angry .. 6 Neutral).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Emotion {
    Angry = 0,
    Disgust = 1,
    Fear = 2,
    Happy = 3,
    Sad = 4,
    Surprise = 5,
    Neutral = 6,
}

impl Emotion {
    /// Number of classes.
    pub const COUNT: usize = 7;
    /// All classes in label order.
    pub const ALL: [Emotion; 7] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Surprise,
        Emotion::Neutral,
    ];

    /// The class with dataset label `label`, if it is in 0..=6.
    pub fn from_label(label: u8) -> Option<Emotion> {
        Emotion::ALL.get(usize::from(label)).copied()
    }

    /// The dataset label (0..=6).
    pub fn label(self) -> u8 {
        self as u8
    }

    /// The label as an index into per-class arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The English name, capitalised as in the FER2013 paper ("Angry", ...).
    pub fn name(self) -> &'static str {
        match self {
            Emotion::Angry => "Angry",
            Emotion::Disgust => "Disgust",
            Emotion::Fear => "Fear",
            Emotion::Happy => "Happy",
            Emotion::Sad => "Sad",
            Emotion::Surprise => "Surprise",
            Emotion::Neutral => "Neutral",
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is neither a known emotion/split name nor a valid number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{found}' (expected one of: {expected})")]
pub struct ParseNameError {
    kind: &'static str,
    found: String,
    expected: &'static str,
}

impl FromStr for Emotion {
    type Err = ParseNameError;

    /// Accepts a label (`"3"`), a name in any case (`"happy"`), or one of the other names
    /// face datasets give their folders (`"anger"`, `"disgusted"`, `"fearful"`,
    /// `"happiness"`, `"sadness"`, `"surprised"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let by_label = s.parse::<u8>().ok().and_then(Emotion::from_label);
        let by_name = || {
            Emotion::ALL
                .into_iter()
                .find(|e| e.name().eq_ignore_ascii_case(s))
        };
        let by_other_name = || {
            let other = match s.to_ascii_lowercase().as_str() {
                "anger" => Emotion::Angry,
                "disgusted" => Emotion::Disgust,
                "fearful" => Emotion::Fear,
                "happiness" => Emotion::Happy,
                "sadness" => Emotion::Sad,
                "surprised" => Emotion::Surprise,
                _ => return None,
            };
            Some(other)
        };
        by_label
            .or_else(by_name)
            .or_else(by_other_name)
            .ok_or_else(|| ParseNameError {
                kind: "emotion",
                found: s.to_string(),
                expected: "0-6, Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral",
            })
    }
}

/// One of FER2013's three splits, named as in its `Usage` column.
///
/// The honest protocol is: fit on `Training`, choose checkpoints and hyper-parameters on
/// `PublicTest`, and only report `PrivateTest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Split {
    Training,
    PublicTest,
    PrivateTest,
}

impl Split {
    /// All splits in dataset order.
    pub const ALL: [Split; 3] = [Split::Training, Split::PublicTest, Split::PrivateTest];

    /// The name used in the `Usage` column and as folder name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Training => "Training",
            Split::PublicTest => "PublicTest",
            Split::PrivateTest => "PrivateTest",
        }
    }

    /// Parses the exact `Usage` value of a FER2013 row (no aliases, surrounding spaces allowed).
    pub fn from_usage(s: &str) -> Option<Split> {
        Split::ALL
            .into_iter()
            .find(|split| split.name() == s.trim())
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = ParseNameError;

    /// Accepts the `Usage` names in any case, kebab-case (`private-test`) and the common
    /// aliases of other FER2013 copies: `train`, `val`/`validation`, `test`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "training" | "train" => Ok(Split::Training),
            "publictest" | "public" | "val" | "valid" | "validation" => Ok(Split::PublicTest),
            "privatetest" | "private" | "test" => Ok(Split::PrivateTest),
            _ => Err(ParseNameError {
                kind: "split",
                found: s.trim().to_string(),
                expected: "Training, PublicTest, PrivateTest (or train, val, test)",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_names_follow_the_dataset() {
        for (label, emotion) in Emotion::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(emotion.label()), label);
            assert_eq!(Emotion::from_label(label as u8), Some(emotion));
            assert_eq!(emotion.name().parse::<Emotion>().unwrap(), emotion);
            assert_eq!(label.to_string().parse::<Emotion>().unwrap(), emotion);
        }
        assert_eq!(Emotion::from_label(7), None);
        assert_eq!(Emotion::Disgust.to_string(), "Disgust");
        assert_eq!("happy".parse::<Emotion>().unwrap(), Emotion::Happy);
        assert!("7".parse::<Emotion>().is_err());
        assert!("joy".parse::<Emotion>().is_err());
        let others = [
            ("anger", Emotion::Angry),
            ("Disgusted", Emotion::Disgust),
            ("fearful", Emotion::Fear),
            ("HAPPINESS", Emotion::Happy),
            ("sadness", Emotion::Sad),
            ("surprised", Emotion::Surprise),
        ];
        for (name, emotion) in others {
            assert_eq!(name.parse::<Emotion>().unwrap(), emotion, "{name}");
        }
        let err = "contempt".parse::<Emotion>().unwrap_err().to_string();
        assert!(err.contains("unknown emotion 'contempt'"), "{err}");
    }

    #[test]
    fn splits_parse_usage_names_and_aliases() {
        assert_eq!(Split::from_usage("PublicTest"), Some(Split::PublicTest));
        assert_eq!(Split::from_usage("publictest"), None);
        assert_eq!("private-test".parse::<Split>().unwrap(), Split::PrivateTest);
        assert_eq!("train".parse::<Split>().unwrap(), Split::Training);
        assert_eq!("val".parse::<Split>().unwrap(), Split::PublicTest);
        let err = "holdout".parse::<Split>().unwrap_err();
        assert!(err.to_string().contains("unknown split 'holdout'"), "{err}");
    }
}
