//! How well `speechgate::audio::align::estimate` places words in audio it knows nothing about
//! but the text.
//!
//! Ground truth is the offline `local` engine's own word events: each text of `TEXTS` is spoken
//! by it (with `timestamps`), then the estimator gets only the PCM and the words (their
//! boundaries read from the punctuation glued to each token), and its start and end of every
//! word are compared with the engine's. Reported per condition (two voices, three speeds) and
//! overall: mean, median and 90th percentile of the absolute error in milliseconds, for word
//! starts and word ends; the first condition again with white noise added (a provider's pauses
//! are not digital silence); the errors by text length; and the estimator's run time per second
//! of audio. A text-only baseline (words spread over the whole clip in proportion to their
//! length) shows what listening to the audio adds.
//!
//! The texts alternate between a development half (even positions), on which the estimator's
//! constants were chosen, and a held-out half (odd positions): both are reported, so an
//! estimator fitted to these sentences would show.
//!
//! One known disagreement: the engine reads a year as a number ("one thousand nine hundred and
//! eighty-seven"), the estimator expects it read as a year ("nineteen eighty-seven"), as the
//! vendors' voices it is for do; the texts with years are among the worst placed.
//!
//! Run with `cargo bench --bench alignment` (needs the default feature `local`; without it,
//! the benchmark only says so).
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

#[cfg(feature = "local")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    bench::run()
}

#[cfg(not(feature = "local"))]
fn main() {
    println!("alignment: skipped, the ground truth comes from the `local` engine (build with `--features local`)");
}

/// The texts: short phrases, questions, exclamations, numbers, clauses, several sentences and a
/// few long paragraphs.
#[cfg_attr(not(feature = "local"), expect(dead_code, reason = "only the `local` benchmark speaks them"))]
const TEXTS: &[&str] = &[
    "Hello there.",
    "Good morning, everyone.",
    "Where did you put the keys?",
    "Turn left at the second light.",
    "The kettle is boiling!",
    "I think so, but I am not sure.",
    "Please call me back after lunch.",
    "Yes.",
    "Is it raining outside?",
    "Three apples, two pears, and a lemon.",
    "The meeting starts at 10:30 tomorrow.",
    "She was born in 1987.",
    "The ticket costs $45, which is a bargain.",
    "About 72% of the votes were counted by midnight.",
    "Pi is roughly 3.14, and e is about 2.72.",
    "We sold 2,500 copies in the first week.",
    "Why not?",
    "Honestly, I have no idea what happened.",
    "The train was late; we missed the connection.",
    "Bring water, a map, and something warm to wear.",
    "He paused: the answer was not what he expected.",
    "Could you repeat that, please?",
    "The library closes at nine on weekdays.",
    "My grandmother grew tomatoes, beans and sunflowers in her small garden.",
    "Nobody expected the quiet student to win the national chess championship.",
    "After the storm, the streets were covered with leaves and broken branches.",
    "If you finish early, you can help me carry these boxes upstairs.",
    "The recipe calls for two eggs, a cup of flour, and a pinch of salt.",
    "What time does the last bus leave from the central station?",
    "Wait! Don't touch that wire.",
    "The experiment failed twice. On the third attempt, it finally worked.",
    "Our office moved to a larger building near the river last spring.",
    "Do you prefer tea or coffee in the morning?",
    "The children built a sandcastle, and the tide washed it away within an hour.",
    "Temperatures will drop to minus 5 degrees overnight, so dress warmly.",
    "The population grew from 8,000 in 1950 to nearly 120,000 today.",
    "Flight 417 to Chicago is now boarding at gate 22.",
    "He ran 26 miles in just under 3 hours.",
    "The invoice, dated March 3, lists 14 items and a total of $1,280.",
    "I looked everywhere: under the bed, behind the sofa, and even in the fridge.",
    "Remarkably, the old bridge survived both floods without any serious damage.",
    "Software engineers often underestimate how long simple tasks will take.",
    "Photosynthesis converts light energy into chemical energy stored in sugar.",
    "The committee postponed its decision until the next quarterly review.",
    "Is this the right way to the museum, or should we turn around?",
    "Well, that was unexpected.",
    "The cat knocked a glass off the table and then looked at me as if nothing had happened.",
    "Keep the receipt; you may need it if the printer breaks.",
    "She whispered something, smiled, and walked out of the room.",
    "Every Tuesday, the market fills the square with fruit, cheese, bread, and flowers.",
    "The river is wide here. Further north, it narrows to a stream you can jump across.",
    "I have read the report. It is thorough, but the conclusions need more evidence.",
    "Stop. Listen carefully. Do exactly what I say.",
    "Can you hear me? Good. Let's begin the lesson.",
    "The package arrived on Monday. Unfortunately, the box was empty.",
    "We walked for hours. The path climbed steadily, and the air grew colder.",
    "Thank you for calling. All of our agents are busy. Please stay on the line.",
    "It was a long day. Still, nobody complained, and the work got done.",
    "The first rule is simple: never leave the campfire unattended. The second rule is just as important.",
    "Astronomers detected a faint signal from a galaxy billions of light years away.",
    "My phone battery died halfway through the call, which was rather embarrassing.",
    "Interesting, isn't it?",
    "Absolutely not!",
    "The answer, as far as anyone can tell, is still unknown.",
    "Mix the paint slowly; otherwise, bubbles will form on the surface.",
    "Carefully, quietly, and without a word, the thief opened the window.",
    "The orchestra tuned their instruments while the audience found their seats.",
    "In 2019, the company employed 340 people; by 2023, it had 1,100.",
    "The speed limit drops from 60 to 30 near the school.",
    "Version 2 fixed 17 bugs and introduced 3 new ones.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Room 12 is on the left, and room 14 is straight ahead.",
    "Her essay, which ran to 40 pages, won the annual prize.",
    "Grab your coat. We're leaving in five minutes, whether you're ready or not.",
    "What a beautiful evening! The sky is orange, pink, and purple all at once.",
    "Is the shop open on Sundays? I need to buy some batteries.",
    "The doctor said to rest for a week. I lasted two days.",
    "Across the valley, church bells began to ring, one after another.",
    "Learning a language takes patience, practice, and a willingness to make mistakes.",
    "The ancient city was abandoned centuries ago, and its ruins are now covered by jungle.",
    "Before you sign anything, read the contract carefully, especially the small print at the end.",
    "Our neighbours are friendly, although their dog barks at everyone who walks past the gate.",
    "Although the forecast promised sunshine, it rained all afternoon and most of the evening.",
    "The museum's newest exhibition explores how maps shaped the way people imagined distant lands.",
    "Please remember to switch off the lights, lock the back door, and feed the fish before you go.",
    "I wonder whether the same idea would work in a smaller town with fewer resources.",
    "To be honest, the second half of the film was much better than the first.",
    "Run!",
    "Not now, maybe later.",
    "Okay. Fine. You win.",
    "See you tomorrow!",
    "Which one is yours, the red one or the blue one?",
    "Our train leaves at 7:15, so we should get up early.",
    "The lake is 300 meters deep in places; divers rarely reach the bottom.",
    "During the summer of 1976, the reservoir dried up completely, revealing an old village. \
     People came from far away to walk through streets that had been underwater for decades. \
     When the rain finally returned in autumn, the village disappeared again.",
    "The lighthouse keeper climbed the stairs every evening, one hundred and twelve of them, \
     to light the lamp. He kept a journal of the weather, the ships that passed, and the birds \
     that rested on the railing. After forty years, the light was automated, and the journal \
     was given to the local museum, where it can still be read today.",
    "Good writing is mostly rewriting. The first draft gets the ideas onto the page; the second \
     draft puts them in order; the third makes them clear. Few people enjoy this process, but \
     almost everyone who writes well has learned to accept it.",
    "When we arrived at the station, the platform was crowded and the departure board showed \
     nothing but delays. A voice announced that a tree had fallen onto the tracks somewhere \
     near the border. Some passengers sighed, others laughed, and a small boy asked his father \
     whether the tree was okay. Eventually, after nearly two hours, the train pulled in, and \
     everyone squeezed aboard as if nothing had happened.",
    "Bees visit millions of flowers to make a single jar of honey. Along the way, they carry \
     pollen from plant to plant, which helps fruit and seeds develop. Without them, many of \
     the foods we take for granted would become rare and expensive.",
    "The recipe is simple. Slice two onions, fry them gently in butter until golden, add a \
     spoonful of flour, and pour in a litre of stock. Simmer for twenty minutes, season with \
     salt and pepper, and serve with toasted bread and plenty of cheese.",
    "In the beginning, the project had three people, one laptop, and a borrowed desk in the \
     corner of a noisy office. Within five years, it had grown into a company of 250 employees \
     with offices in four countries. The founders often said that the hardest part was not \
     building the product, but learning to say no to good ideas that did not fit.",
    "Why do cats purr? Scientists are still not completely sure. Purring often means \
     contentment, but cats also purr when they are injured or frightened, which suggests that \
     it may help them calm down or even heal.",
    "She opened the letter, read the first line, and sat down. It was from her brother, who \
     had not written in eleven years.",
    "Mountains make their own weather. A clear morning can turn into a thunderstorm by noon, \
     so experienced hikers start early and turn back at the first sign of trouble.",
    "The old clock in the hallway stopped at a quarter past four.",
    "Turn the handle gently, or the door will jam again.",
    "Check the tyres, the oil, and the brakes before a long drive.",
    "Nobody answered, so I left a note under the door.",
    "Are we there yet? No. Are we there now? Still no.",
    "The garden needs rain, but the forecast says another dry week.",
];

#[cfg(feature = "local")]
mod bench {
    use std::time::Instant;

    use futures::StreamExt;
    use speechgate::{
        audio::align::{self, Boundary, Word},
        config::LocalConfig,
        domain::audio::AudioSpec,
        providers::{
            local::{Local, NATIVE_RATE},
            SpeechProvider, SynthesisEvent, SynthesisRequest, WordTiming,
        },
    };

    use super::TEXTS;

    /// (voice, speed) pairs: two voices and three speeds, so nothing is tuned to one of them.
    const CONDITIONS: [(&str, f32); 5] =
        [("en-us", 1.0), ("en-us", 0.8), ("en-us", 1.3), ("en-gb", 1.0), ("en-gb", 1.3)];
    /// Runs of the estimator over all clips of a condition for the timing.
    const TIMING_RUNS: usize = 3;
    /// Level of the white noise added in the noisy variant of the first condition.
    const NOISE_DBFS: f64 = -50.0;

    type Error = Box<dyn std::error::Error>;

    /// One spoken text with the engine's word timings.
    struct Clip {
        text_index: usize,
        samples: Vec<i16>,
        truth: Vec<WordTiming>,
    }

    /// Absolute errors in seconds, collected per group.
    #[derive(Default)]
    struct Errors {
        starts: Vec<f64>,
        ends: Vec<f64>,
    }

    impl Errors {
        fn add(&mut self, estimated: &[(f64, f64)], truth: &[WordTiming]) {
            for ((start, end), word) in estimated.iter().zip(truth) {
                self.starts.push((start - word.start).abs());
                self.ends.push((end - word.end).abs());
            }
        }

        fn extend(&mut self, other: &Errors) {
            self.starts.extend_from_slice(&other.starts);
            self.ends.extend_from_slice(&other.ends);
        }

        fn line(&self, label: &str) -> String {
            let (s, e) = (summary(&self.starts), summary(&self.ends));
            format!(
                "{label:<32} {:>6} | {:>6.1} {:>6.1} {:>6.1} | {:>6.1} {:>6.1} {:>6.1}",
                self.starts.len(),
                s.0,
                s.1,
                s.2,
                e.0,
                e.1,
                e.2
            )
        }
    }

    /// Mean, median and 90th percentile, in milliseconds.
    fn summary(errors: &[f64]) -> (f64, f64, f64) {
        if errors.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        let mut sorted = errors.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] * 1000.0;
        (sorted.iter().sum::<f64>() / sorted.len() as f64 * 1000.0, at(0.5), at(0.9))
    }

    /// The words of `text` as a caller would hand them over: whitespace-separated tokens without
    /// the quotes, brackets and punctuation around them (as the engine reports them), each with
    /// the boundary its trailing punctuation marks. Tokens with nothing to say (`--`, `&`) are
    /// dropped, their punctuation passing to the word before; a dotted abbreviation (`e.g.`)
    /// keeps its last full stop, as the engine's words do.
    fn words(text: &str) -> Vec<Word<'_>> {
        let leading = |c: char| matches!(c, '"' | '\'' | '(' | '[' | '“' | '‘' | '-' | '–' | '—');
        let trailing = |c: char| {
            matches!(c, '.' | '!' | '?' | '…' | ',' | ';' | ':' | '"' | '\'' | ')' | ']' | '”' | '’' | '-' | '–' | '—')
        };
        let mut out: Vec<Word<'_>> = Vec::new();
        for token in text.split_whitespace() {
            let start = token.len() - token.trim_start_matches(leading).len();
            let mut end = token.trim_end_matches(trailing).len().max(start);
            if token[start..end].chars().rev().nth(1) == Some('.') && token[end..].starts_with('.') {
                end += 1;
            }
            let boundary = token[end..].chars().fold(Boundary::None, |boundary, c| match c {
                '.' | '!' | '?' | '…' => Boundary::Sentence,
                ',' | ';' | ':' | '-' | '–' | '—' if boundary == Boundary::None => Boundary::Comma,
                _ => boundary,
            });
            let text = &token[start..end];
            if text.chars().any(char::is_alphanumeric) {
                out.push(Word { text, boundary });
            } else if let Some(last) = out.last_mut() {
                if boundary != Boundary::None && last.boundary != Boundary::Sentence {
                    last.boundary = boundary;
                }
            }
        }
        out
    }

    fn request(voice: &str, speed: f32, text: &str) -> SynthesisRequest {
        SynthesisRequest {
            model: "espeak-ng".to_owned(),
            voice: voice.to_owned(),
            text: text.to_owned(),
            output: AudioSpec::pcm(NATIVE_RATE),
            speed: Some(speed),
            instructions: None,
            language: None,
            seed: Some(7),
            provider_options: serde_json::Map::new(),
            timestamps: true,
            credential: None,
        }
    }

    async fn synthesize(local: &Local, voice: &str, speed: f32) -> Result<Vec<Clip>, Error> {
        let mut clips = Vec::with_capacity(TEXTS.len());
        for (text_index, text) in TEXTS.iter().enumerate() {
            let mut stream = local.synthesize(request(voice, speed, text)).await?;
            let mut bytes = Vec::new();
            let mut truth = Vec::new();
            while let Some(event) = stream.next().await {
                match event? {
                    SynthesisEvent::Audio(chunk) => bytes.extend_from_slice(&chunk),
                    SynthesisEvent::Words(batch) => truth.extend(batch),
                    SynthesisEvent::Tokens(_) | SynthesisEvent::Warning(_) => {}
                }
            }
            let samples = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
            clips.push(Clip { text_index, samples, truth });
        }
        Ok(clips)
    }

    /// Whether the engine's words are the bench's words (the engine keeps a dotted
    /// abbreviation's last full stop, the bench's tokens may not).
    fn same_words(ours: &[Word], truth: &[WordTiming]) -> bool {
        ours.len() == truth.len()
            && ours.iter().zip(truth).all(|(a, b)| a.text.trim_end_matches('.') == b.text.trim_end_matches('.'))
    }

    /// Words spread over the whole clip in proportion to their length in characters: what a
    /// gateway could do without looking at the audio.
    fn baseline(seconds: f64, words: &[Word]) -> Vec<(f64, f64)> {
        let lengths: Vec<f64> = words.iter().map(|w| w.text.chars().count().max(1) as f64).collect();
        let total: f64 = lengths.iter().sum();
        let mut at = 0.0;
        lengths
            .iter()
            .map(|l| {
                let start = at;
                at += seconds * l / total;
                (start, at)
            })
            .collect()
    }

    /// `clip` with white noise at `dbfs` (RMS) added: real providers' pauses are not digital
    /// silence. Deterministic (xorshift), so runs compare.
    fn with_noise(samples: &[i16], dbfs: f64) -> Vec<i16> {
        // Uniform noise of peak `a` has an RMS of a / sqrt(3).
        let peak = 32768.0 * 10f64.powf(dbfs / 20.0) * 3f64.sqrt();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        samples
            .iter()
            .map(|&s| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let uniform = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                (f64::from(s) + uniform * peak).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    /// Errors of one condition: the estimator on each half of the texts, the baseline, and the
    /// estimator by text length.
    #[derive(Default)]
    struct Condition {
        development: Errors,
        held_out: Errors,
        baseline: Errors,
        /// Texts of up to 10 words, 11 to 30, more.
        by_length: [Errors; 3],
    }

    impl Condition {
        fn extend(&mut self, other: &Condition) {
            self.development.extend(&other.development);
            self.held_out.extend(&other.held_out);
            self.baseline.extend(&other.baseline);
            for (mine, theirs) in self.by_length.iter_mut().zip(&other.by_length) {
                mine.extend(theirs);
            }
        }

        fn print(&self, label: &str, details: bool) {
            let mut all = Errors::default();
            all.extend(&self.development);
            all.extend(&self.held_out);
            println!("{}", all.line(label));
            if details {
                println!("{}", self.development.line("  development half"));
                println!("{}", self.held_out.line("  held-out half"));
                println!("{}", self.baseline.line("  text-only baseline"));
            }
        }
    }

    /// Runs the estimator on `clips` (with `noise` dBFS of noise added, if any).
    fn evaluate(clips: &[Clip], noise: Option<f64>) -> Condition {
        let mut condition = Condition::default();
        for clip in clips {
            let words = words(TEXTS[clip.text_index]);
            if !same_words(&words, &clip.truth) {
                let truth: Vec<&str> = clip.truth.iter().map(|w| w.text.as_str()).collect();
                let ours: Vec<&str> = words.iter().map(|w| w.text).collect();
                println!("  skipped text {}: words differ\n    ours   {ours:?}\n    engine {truth:?}", clip.text_index);
                continue;
            }
            let estimated = match noise {
                Some(dbfs) => align::estimate(&with_noise(&clip.samples, dbfs), NATIVE_RATE, &words),
                None => align::estimate(&clip.samples, NATIVE_RATE, &words),
            };
            let half = if clip.text_index % 2 == 0 { &mut condition.development } else { &mut condition.held_out };
            half.add(&estimated, &clip.truth);
            let length = match words.len() {
                0..=10 => 0,
                11..=30 => 1,
                _ => 2,
            };
            condition.by_length[length].add(&estimated, &clip.truth);
            let seconds = clip.samples.len() as f64 / f64::from(NATIVE_RATE);
            condition.baseline.add(&baseline(seconds, &words), &clip.truth);
        }
        condition
    }

    pub(super) fn run() -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let local = Local::new(&LocalConfig::default())?;
        println!("Word alignment from audio alone, against the local engine's word events ({} texts)", TEXTS.len());
        println!("absolute error in ms             words |  start: mean median    p90 |    end: mean median    p90");
        let mut total = Condition::default();
        let (mut audio_seconds, mut estimate_seconds) = (0.0, 0.0);
        for (voice, speed) in CONDITIONS {
            let clips = runtime.block_on(synthesize(&local, voice, speed))?;
            let condition = evaluate(&clips, None);
            condition.print(&format!("{voice} x{speed}"), true);
            total.extend(&condition);
            if (voice, speed) == CONDITIONS[0] {
                evaluate(&clips, Some(NOISE_DBFS)).print(&format!("{voice} x{speed}, noise {NOISE_DBFS} dBFS"), true);
            }
            // Run time: every clip of the condition, a few times over.
            let started = Instant::now();
            for _ in 0..TIMING_RUNS {
                for clip in &clips {
                    let words = words(TEXTS[clip.text_index]);
                    std::hint::black_box(align::estimate(&clip.samples, NATIVE_RATE, &words));
                    audio_seconds += clip.samples.len() as f64 / f64::from(NATIVE_RATE);
                }
            }
            estimate_seconds += started.elapsed().as_secs_f64();
        }
        total.print("all conditions (no noise)", true);
        for (errors, label) in
            total.by_length.iter().zip(["  texts of 1-10 words", "  texts of 11-30 words", "  texts of 31+ words"])
        {
            println!("{}", errors.line(label));
        }
        println!(
            "run time: {:.3} ms per second of audio ({:.0} s of audio estimated, one thread)",
            estimate_seconds * 1000.0 / audio_seconds.max(1e-9),
            audio_seconds
        );
        Ok(())
    }
}
