//go:build race

package dataset

// raceDetector is true under -race, which slows training about thirtyfold.
const raceDetector = true
