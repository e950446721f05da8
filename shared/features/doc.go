// Package features turns OHLCV bars into technical indicators, the ML feature matrix and the
// direction labels the ensemble is trained on.
//
// # No look-ahead
//
// Every value at index i is computed from inputs 0..i only, so a feature at time t is the same
// number whether or not later bars exist. Matrix and Compute are pure functions of their input
// with no pass over the data in reverse; the tests check that truncating or rewriting the bars
// after t leaves every value up to t bitwise identical. Labels is the only function that looks
// forward, and that is its job: label i describes bar i+1.
//
// Warm-up values are math.NaN(): an indicator that needs n inputs has no value before it has
// seen them. encoding/json rejects NaN, so handlers must turn it into null.
//
// # Indicators
//
// SMA, EMA, RSI, MACD, Bollinger, ATR, RealisedVol and VolumeRatio return a slice as long as
// their input. An invalid period (n < 1, or n < 2 where a sample deviation needs it) never warms
// up and gives all NaN. Inputs are expected to be finite: a NaN inside a series spoils the
// windows that contain it (SMA, Bollinger, RealisedVol, VolumeRatio) or everything after it
// (EMA, RSI, ATR).
//
// # Prices
//
// Prices are Bar.Close, High, Low and Open as reported, not AdjClose: a vendor's adjusted close
// is rescaled after every later dividend and split, so using it would leak the future into the
// past. Callers that need split-adjusted input adjust all four prices before calling.
package features
