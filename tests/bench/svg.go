package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// coldStartSVG draws one row per function: every cold start as a dot, a box from the first
// to the third quartile, the median as a bar, whiskers to min and max, and the 50 ms target
// as a dashed line. Plain SVG written by hand, so the report needs no plotting dependency.
func coldStartSVG(cs []ColdStart, target float64) string {
	var rows []ColdStart
	for _, c := range cs {
		if len(c.Process.All) > 0 {
			rows = append(rows, c)
		}
	}
	const (
		left, right, top, rowH, bottom = 190.0, 30.0, 56.0, 22.0, 50.0
		width                          = 900.0
	)
	height := top + rowH*float64(len(rows)) + bottom
	hi := target
	for _, c := range rows {
		hi = max(hi, c.Process.Max)
	}
	step := niceStep(hi / 8)
	hi = math.Ceil(hi/step) * step
	x := func(v float64) float64 { return left + (width-left-right)*v/hi }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="14" font-weight="bold">Cold start under the local platform: process start to first 200 (ms), every run</text>`+"\n", left)
	axisY := top + rowH*float64(len(rows))
	for v := 0.0; v <= hi+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#e5e5e5"/>`+"\n", x(v), top-4, x(v), axisY)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%g</text>`+"\n", x(v), axisY+16, v)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">milliseconds</text>`+"\n", (left+width-right)/2, axisY+36)
	for i, c := range rows {
		y := top + rowH*float64(i) + rowH/2
		s := slices.Clone(c.Process.All)
		slices.Sort(s)
		q1, q3 := quantile(s, 0.25), quantile(s, 0.75)
		fill := "#dbe9f6"
		if c.Process.Median >= target {
			fill = "#f6dbdb"
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-8, y, html.EscapeString(c.Function))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555"/>`+"\n", x(s[0]), y, x(s[len(s)-1]), y)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="#555"/>`+"\n", x(q1), y-7, max(1, x(q3)-x(q1)), 14.0, fill)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-width="2"/>`+"\n", x(c.Process.Median), y-8, x(c.Process.Median), y+8)
		for j, v := range c.Process.All {
			// A fixed small spread, so that equal values stay visible side by side.
			dy := float64(j%5-2) * 2
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.8" fill="#1f5fa8" fill-opacity="0.7"/>`+"\n", x(v), y+dy)
		}
		fmt.Fprintf(&b, `<title>%s: median %.1f ms, p95 %.1f ms, n=%d</title>`+"\n", html.EscapeString(c.Function), c.Process.Median, c.Process.P95, c.Process.N)
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#c0392b" stroke-dasharray="5,4"/>`+"\n", x(target), top-8, x(target), axisY)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" fill="#c0392b" text-anchor="middle">target: median &lt; %g ms</text>`+"\n", x(target), top-12, target)
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}
