//! The standard normal distribution: density, distribution function, and a seeded sampler whose
//! draws are the same bits on every machine.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// 1 / sqrt(2 pi).
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Density of the standard normal.
pub(crate) fn standard_normal_pdf(x: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// Distribution function of the standard normal, through the complementary error function:
/// erfc keeps full relative precision deep in the lower tail (where 1 + erf would cancel), and
/// N(x) + N(-x) = 1 to within rounding, which put-call parity relies on.
pub(crate) fn standard_normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// A seeded standard normal generator: ChaCha8 (whose output stream is specified, so identical
/// on every platform) feeding Marsaglia's polar method. The polar method needs only `ln` and
/// `sqrt`; `sqrt` is correctly rounded by IEEE 754 and `ln` comes from the pure-Rust `libm`
/// rather than the platform's C library, so the same seed gives the same bits everywhere.
pub(crate) struct NormalSampler {
    rng: ChaCha8Rng,
    /// The polar method makes normals in pairs; the second waits here for the next call.
    spare: Option<f64>,
}

impl NormalSampler {
    /// A sampler on stream `stream` of the generator seeded with `seed`; distinct streams of one
    /// seed are independent sequences.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self { rng, spare: None }
    }

    /// A uniform draw on [0, 1) with 53 random bits (every value a multiple of 2^-53).
    pub(crate) fn next_unit_interval(&mut self) -> f64 {
        const TWO_POW_MINUS_53: f64 = 1.0 / (1u64 << 53) as f64;
        (self.rng.next_u64() >> 11) as f64 * TWO_POW_MINUS_53
    }

    /// A uniform draw on [low, high).
    pub(crate) fn next_uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_unit_interval()
    }

    /// A standard normal draw.
    pub(crate) fn next_standard_normal(&mut self) -> f64 {
        if let Some(spare) = self.spare.take() {
            return spare;
        }
        loop {
            let u = 2.0 * self.next_unit_interval() - 1.0;
            let v = 2.0 * self.next_unit_interval() - 1.0;
            let radius_squared = u * u + v * v;
            // Accept points strictly inside the unit disc, but not its centre (ln 0); about
            // 79 % of pairs are accepted.
            if radius_squared < 1.0 && radius_squared > 0.0 {
                let scale = (-2.0 * libm::log(radius_squared) / radius_squared).sqrt();
                self.spare = Some(v * scale);
                return u * scale;
            }
        }
    }
}
