//! Tests of the analytics core against published reference values and known distributions.

mod binomial;
mod black_scholes;
mod portfolio;
mod support;
mod synthetic;
mod tail_risk;
mod volatility;
