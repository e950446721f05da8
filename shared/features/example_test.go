package features_test

import (
	"fmt"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/market"
)

func ExampleSMA() {
	fmt.Println(features.SMA([]float64{1, 2, 3, 4, 5}, 3))
	// Output: [NaN NaN 2 3 4]
}

func ExampleParseIndicatorList() {
	names, err := features.ParseIndicatorList("RSI14, macd")
	fmt.Println(names, err)
	_, err = features.ParseIndicatorList("rsi14,vwap")
	fmt.Println(err)
	// Output:
	// [rsi14 macd] <nil>
	// unknown indicator "vwap" (valid: rsi14, macd, bollinger, sma20, ema12, ema26, all)
}

func ExampleLabels() {
	bars := []market.Bar{{Close: 100}, {Close: 102}, {Close: 102.1}, {Close: 99}}
	fmt.Println(features.Labels(bars, 0))     // binary: 1 up, 0 down or unchanged
	fmt.Println(features.Labels(bars, 0.005)) // 2 up, 1 flat, 0 down
	// Output:
	// [1 1 0 -1]
	// [2 1 0 -1]
}
