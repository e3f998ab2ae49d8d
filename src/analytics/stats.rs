//! Sample statistics of return series. Two-pass formulas (mean first, then deviations from it)
//! because daily returns are small numbers whose squares cancel badly in one-pass sums.

/// Arithmetic mean; callers guarantee a non-empty slice.
pub(crate) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Sample covariance (denominator n - 1) of two equally long series of at least two values.
pub(crate) fn sample_covariance(xs: &[f64], ys: &[f64]) -> f64 {
    debug_assert_eq!(xs.len(), ys.len());
    let x_mean = mean(xs);
    let y_mean = mean(ys);
    let cross: f64 = xs.iter().zip(ys).map(|(x, y)| (x - x_mean) * (y - y_mean)).sum();
    cross / (xs.len() - 1) as f64
}

/// Sample variance (denominator n - 1) of at least two values.
pub(crate) fn sample_variance(values: &[f64]) -> f64 {
    sample_covariance(values, values)
}

/// The first four moments and the range of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments {
    pub mean: f64,
    /// Sample standard deviation (denominator n - 1), the usual estimator for volatility.
    pub std_dev: f64,
    /// Moment ratio g1 = m3 / m2^1.5 with population central moments (as `scipy.stats.skew`).
    pub skewness: f64,
    /// g2 = m4 / m2^2 - 3 with population central moments (as `scipy.stats.kurtosis`).
    pub excess_kurtosis: f64,
    pub min: f64,
    pub max: f64,
}

/// Moments of at least two values. Skewness and excess kurtosis of a series that does not vary
/// are reported as 0 (a degenerate distribution has no shape), not NaN, so results stay finite.
pub(crate) fn moments(values: &[f64]) -> Moments {
    let count = values.len() as f64;
    let mean = mean(values);
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &value in values {
        let deviation = value - mean;
        let squared = deviation * deviation;
        m2 += squared;
        m3 += squared * deviation;
        m4 += squared * squared;
        min = min.min(value);
        max = max.max(value);
    }
    let sum_of_squares = m2;
    m2 /= count;
    m3 /= count;
    m4 /= count;
    let (skewness, excess_kurtosis) = if m2 > 0.0 { (m3 / m2.powf(1.5), m4 / (m2 * m2) - 3.0) } else { (0.0, 0.0) };
    Moments { mean, std_dev: (sum_of_squares / (count - 1.0)).sqrt(), skewness, excess_kurtosis, min, max }
}
