//! Cholesky factorization of a covariance matrix, for sampling correlated normals.

/// The Cholesky pivot that went negative: the matrix is not positive semi-definite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NotPositiveSemiDefinite {
    /// Row (asset) of the failing pivot.
    pub index: usize,
    /// The negative pivot.
    pub pivot: f64,
}

/// The lower-triangular `L` with `L Lᵀ = covariance`, both row-major `dimension × dimension`.
///
/// A covariance of returns is often only semi-definite (an asset that is a combination of
/// others, or fewer days than assets). A pivot that is zero up to rounding (below 1e-12 of the
/// largest variance) therefore gets a zero column instead of failing: the asset's randomness is
/// already spanned by the earlier factors, and its Schur complement is zero there, so `L Lᵀ`
/// still reproduces the matrix. Only a clearly negative pivot is an error.
pub(crate) fn cholesky_lower(covariance: &[f64], dimension: usize) -> Result<Vec<f64>, NotPositiveSemiDefinite> {
    debug_assert_eq!(covariance.len(), dimension * dimension);
    let largest_variance = (0..dimension).map(|i| covariance[i * dimension + i]).fold(0.0_f64, f64::max);
    let tolerance = 1e-12 * largest_variance;

    let mut lower = vec![0.0; dimension * dimension];
    for column in 0..dimension {
        let row_start = column * dimension;
        let already_explained: f64 = lower[row_start..row_start + column].iter().map(|l| l * l).sum();
        let pivot = covariance[row_start + column] - already_explained;
        if pivot < -tolerance {
            return Err(NotPositiveSemiDefinite { index: column, pivot });
        }
        if pivot <= tolerance {
            // Zero column (already zero-initialized): see the function's comment.
            continue;
        }
        let diagonal = pivot.sqrt();
        lower[row_start + column] = diagonal;
        for row in column + 1..dimension {
            let other_start = row * dimension;
            let shared: f64 = (0..column).map(|k| lower[other_start + k] * lower[row_start + k]).sum();
            lower[other_start + column] = (covariance[other_start + column] - shared) / diagonal;
        }
    }
    Ok(lower)
}
