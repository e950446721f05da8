package market

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Synthetic is a simulated Tokyo market: deterministic, offline, and shaped like the real
// thing so features, screens and paper trading behave plausibly without a data feed.
//
// Every symbol gets its own parameters from a hash of its name (a base price of ¥500–20,000,
// or 24,000–36,000 points for an index, a volatility and a typical volume) and one daily
// walk that starts at syntheticEpoch. Each trading day draws from a random stream seeded by
// (symbol, day), so a bar depends only on its symbol and time, never on the query: the
// last week of a month-long query is the week-long query.
//
// The daily process switches between trending-up, trending-down and ranging regimes
// (Markov, about 35 days each), has GARCH(1,1) volatility clustering with occasional news
// days (fat tails), an overnight gap, and a slow pull back to the base price so levels stay
// realistic over decades. Each day's open-to-close move is spread over the minutes of the
// TSE sessions by a Brownian bridge with a U-shaped volatility profile; volume follows a
// U-shape with opening and closing auctions and rises with the size of the move. Daily,
// weekly and monthly bars are built from those minutes, so every interval agrees. Stock
// prices sit on the TSE tick grid; volumes are whole lots of 100; indices have volume 0.
//
// Query.End bounds what is visible: a minute counts once it has ended, so the bar holding
// End is partial, as a live feed's is.
type Synthetic struct {
	now      func() time.Time
	profiles map[int]*dayProfile // by minutes in the day (300 before 2024-11-05, then 330)
}

var _ Provider = (*Synthetic)(nil)

// syntheticEpoch is where every symbol's walk starts; syntheticLimit bounds the walk's
// length (and a query's cost).
var (
	syntheticEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, JST)
	syntheticLimit = time.Date(2100, 1, 1, 0, 0, 0, 0, JST)
)

// NewSynthetic returns the synthetic provider; it uses only opts.Now.
func NewSynthetic(opts Options) *Synthetic {
	o := opts.withDefaults()
	return &Synthetic{
		now:      o.Now,
		profiles: map[int]*dayProfile{300: newDayProfile(150, 150), 330: newDayProfile(150, 180)},
	}
}

// Bars simulates the query. Every interval but "5d" is served; intraday ones reach back as
// far as Yahoo's do (CheckCombination). Nothing exists before 2000 or after 2099.
func (s *Synthetic) Bars(ctx context.Context, q Query) ([]Bar, error) {
	r, err := resolve(q, s.now)
	if err != nil {
		return nil, err
	}
	if r.Interval == "5d" {
		return nil, fmt.Errorf("%w: synthetic has no 5d interval; use 1d or 1wk", ErrUnsupported)
	}
	if err := checkCombination(r.Period, r.Interval, r.End); err != nil {
		return nil, err
	}
	if !r.End.Before(syntheticLimit) {
		return nil, fmt.Errorf("%w: the synthetic market ends on %s", ErrUnsupported, syntheticLimit.AddDate(0, 0, -1).Format(time.DateOnly))
	}
	from := r.from
	if from.Before(syntheticEpoch) {
		from = syntheticEpoch
	}
	intraday := r.Interval.Intraday()
	step := int(r.Interval.Duration() / time.Minute)

	m := newSymbolModel(r.Symbol)
	var out []Bar
	lastDay := dayStart(r.End)
	for d, i := syntheticEpoch, 0; !d.After(lastDay); d, i = d.AddDate(0, 0, 1), i+1 {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ss := sessions(d)
		if ss == nil {
			continue
		}
		plan := m.step(d)
		if dayStart(d).Before(dayStart(from)) {
			continue
		}
		path := m.path(plan, ss, s.profiles)
		visible := path.total // a minute is visible once it has ended
		for visible > 0 && path.minuteTime(visible-1, ss).Add(time.Minute).After(r.End) {
			visible--
		}
		if visible == 0 {
			continue
		}
		if intraday {
			out = m.appendBuckets(out, path, visible, ss, step)
		} else {
			out = append(out, m.bar(path, 0, visible, dayStart(d)))
		}
	}
	out = window(out, from, r.End)
	if !intraday {
		out = aggregateDaily(out, r.Interval)
	}
	return out, nil
}

// appendBuckets adds bars of step minutes built from the first visible minutes of a day,
// aligned to each session's start and never spanning the lunch break.
func (m *symbolModel) appendBuckets(out []Bar, d *dayPath, visible int, ss []session, step int) []Bar {
	width := time.Duration(step) * time.Minute
	for i := 0; i < visible; {
		t := d.minuteTime(i, ss)
		start := ss[0].start
		if i >= d.morning {
			start = ss[1].start
		}
		bucket := start.Add(t.Sub(start) / width * width).UTC()
		j := i + 1
		for j < visible && j != d.morning && d.minuteTime(j, ss).Sub(bucket) < width {
			j++
		}
		out = append(out, m.bar(d, i, j, bucket))
		i = j
	}
	return out
}

// Model constants. Daily figures are in log-price units.
const (
	regimeSwitchProb = 1.0 / 35 // mean regime length in trading days
	trendDrift       = 0.06     // daily drift in a trend, in units of the symbol's volatility
	rangeReversion   = 0.03     // daily pull to the level where a ranging regime began
	basePull         = 0.006    // daily pull to the symbol's base price (half-life ~115 days)
	garchAlpha       = 0.09
	garchBeta        = 0.89
	gapShare         = 0.25 // share of a day's variance realised overnight
	newsDayProb      = 0.02 // chance of a 3x shock
)

const (
	regimeUp = iota
	regimeDown
	regimeRange
)

// symbolModel is one symbol's parameters and the state of its daily walk.
type symbolModel struct {
	seed    uint64
	index   bool
	logBase float64 // log of the base price
	sigma   float64 // long-run daily volatility
	volume  float64 // typical daily volume, shares

	logClose, h, eps float64 // last close, GARCH variance, last shock
	regime           int
	anchor           float64 // log level where the current ranging regime began

	pcg     *rand.PCG
	rng     *rand.Rand
	scratch dayPath // reused by path
}

// dayPlan is what the daily walk decides for one day; path fills in its minutes.
type dayPlan struct {
	day         uint64  // days since 1970-01-01 (JST date)
	open, close float64 // log prices
	intraVar    float64 // open-to-close variance
	volume      float64
}

// symbolSeed hashes a symbol (FNV-1a, then a splitmix64 finaliser to spread the bits).
func symbolSeed(sym string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(sym))
	return splitmix(h.Sum64())
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps a hash to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// logUniform picks from [lo, hi) evenly in log space.
func logUniform(x uint64, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + unit(x)*(math.Log(hi)-math.Log(lo)))
}

func newSymbolModel(sym string) *symbolModel {
	seed := symbolSeed(sym)
	k1, k2, k3, k4 := splitmix(seed^1), splitmix(seed^2), splitmix(seed^3), splitmix(seed^4)
	m := &symbolModel{seed: seed, index: strings.HasPrefix(sym, "^")}
	if m.index {
		m.logBase = math.Log(24_000 + unit(k1)*12_000)
		m.sigma = 0.009 + unit(k2)*0.005
	} else {
		m.logBase = math.Log(logUniform(k1, 500, 20_000))
		m.sigma = 0.012 + unit(k2)*0.016
		m.volume = logUniform(k3, 1e5, 2e7)
	}
	m.logClose, m.anchor, m.h = m.logBase, m.logBase, m.sigma*m.sigma
	m.regime = int(k4 % 3)
	m.pcg = rand.NewPCG(seed, 0)
	m.rng = rand.New(m.pcg)
	return m
}

// step advances the daily walk to trading day d and plans it.
func (m *symbolModel) step(d time.Time) dayPlan {
	day := uint64((d.Unix() + 9*3600) / 86400)
	m.pcg.Seed(m.seed, day<<1)
	r := m.rng

	if r.Float64() < regimeSwitchProb {
		m.regime = (m.regime + 1 + r.IntN(2)) % 3
		m.anchor = m.logClose
	}
	var mu, scale float64
	switch m.regime {
	case regimeUp:
		mu, scale = trendDrift*m.sigma, 1.1
	case regimeDown:
		mu, scale = -trendDrift*m.sigma, 1.1
	default:
		mu, scale = -rangeReversion*(m.logClose-m.anchor), 0.8
	}
	mu -= basePull * (m.logClose - m.logBase)

	lr := m.sigma * m.sigma
	m.h = lr*(1-garchAlpha-garchBeta) + garchAlpha*m.eps*m.eps + garchBeta*m.h
	m.h = min(max(m.h, 0.09*lr), 9*lr) // volatility stays within 0.3x–3x its norm
	sd := math.Sqrt(m.h) * scale

	z1, z2 := r.NormFloat64(), r.NormFloat64()
	if r.Float64() < newsDayProb {
		z2 *= 3
	}
	gap := math.Sqrt(gapShare) * sd * z1
	intra := math.Sqrt(1-gapShare) * sd * z2
	// GARCH sees the shock in units where E[eps²] = h (no regime scale, news days
	// normalised), so the variance stays stationary around sigma² in every regime.
	m.eps = math.Sqrt(m.h) * (math.Sqrt(gapShare)*z1 + math.Sqrt(1-gapShare)*z2) / math.Sqrt(1+(1-gapShare)*8*newsDayProb)

	p := dayPlan{day: day, open: m.logClose + gap, intraVar: (1 - gapShare) * sd * sd}
	p.close = p.open + mu + intra
	m.logClose = p.close
	if !m.index {
		// Busy days are volatile days: volume grows with the shock and with the regime of
		// volatility, around a log-normal day-to-day scatter.
		p.volume = m.volume * math.Exp(0.45*r.NormFloat64()-0.1) *
			(0.7 + 0.3*math.Abs(m.eps)/(0.8*m.sigma)) * math.Sqrt(math.Sqrt(m.h)/m.sigma)
	}
	return p
}

// dayProfile shapes a day's minutes: price-variance weights (U-shaped, with a bump after
// lunch) and volume weights (U-shaped, with auction spikes at each session's open and close).
type dayProfile struct {
	sqrtW, cum, vw []float64 // w and vw sum to 1; cum[i] = w[0] + … + w[i]
}

func newDayProfile(morning, afternoon int) *dayProfile {
	n := morning + afternoon
	w := make([]float64, n)
	p := &dayProfile{sqrtW: make([]float64, n), cum: make([]float64, n), vw: make([]float64, n)}
	var ws, vs float64
	for i := range n {
		f := float64(i)
		wi := 1 + 2*math.Exp(-f/15)
		v := 1 + 3*math.Exp(-f/10)
		if i < morning {
			wi += 0.4 * math.Exp(-float64(morning-1-i)/10)
			v += 0.5 * math.Exp(-float64(morning-1-i)/8)
		} else {
			a, e := float64(i-morning), float64(n-1-i)
			wi += 0.8*math.Exp(-a/10) + 0.8*math.Exp(-e/20)
			v += 1.0*math.Exp(-a/8) + 2.0*math.Exp(-e/15)
		}
		switch i {
		case 0:
			v *= 6 // opening auction
		case morning - 1, morning:
			v *= 2 // morning close, afternoon open
		case n - 1:
			v *= 10 // closing auction
		}
		w[i], p.vw[i] = wi, v
		ws += wi
		vs += v
	}
	acc := 0.0
	for i := range n {
		acc += w[i] / ws
		p.cum[i] = acc
		p.sqrtW[i] = math.Sqrt(w[i] / ws)
		p.vw[i] /= vs
	}
	return p
}

// dayPath is one day's minutes in log price relative to the open: close, high and low of
// each minute, and its volume. Prices stay in log space until a bar is built, so a bar of
// any length costs four exponentials, not four per minute; because exp and rounding to the
// tick grid are monotone, the result is the same as folding the minute bars.
type dayPath struct {
	openPx         float64
	close, hi, lo  []float64
	volume         []float64
	morning, total int
}

// path draws day p's minutes: a Brownian bridge from the planned open to the planned close
// with U-shaped variance, wicks around each minute's move, and volume that follows the
// profile and the size of the move.
func (m *symbolModel) path(p dayPlan, ss []session, profiles map[int]*dayProfile) *dayPath {
	morning := int(ss[0].end.Sub(ss[0].start) / time.Minute)
	n := morning + int(ss[1].end.Sub(ss[1].start)/time.Minute)
	prof := profiles[n]
	m.pcg.Seed(m.seed, p.day<<1|1)
	r := m.rng

	d := &m.scratch
	d.openPx, d.morning, d.total = math.Exp(p.open), morning, n
	d.close, d.hi, d.lo, d.volume = grow(d.close, n), grow(d.hi, n), grow(d.lo, n), grow(d.volume, n)

	sdDay := math.Sqrt(p.intraVar)
	acc := 0.0
	for i := range n {
		acc += sdDay * prof.sqrtW[i] * r.NormFloat64()
		d.close[i] = acc
	}
	miss := acc - (p.close - p.open) // pin the walk's end to the planned close
	prev := 0.0
	for i := range n {
		x := d.close[i] - prof.cum[i]*miss
		if i == n-1 {
			x = p.close - p.open
		}
		d.close[i] = x
		sdMin := sdDay * prof.sqrtW[i]
		d.hi[i] = max(prev, x) + 0.5*sdMin*math.Abs(r.NormFloat64())
		d.lo[i] = min(prev, x) - 0.5*sdMin*math.Abs(r.NormFloat64())
		noise := 0.3 + 0.7*r.ExpFloat64() // mean 1, right-skewed like real minute volume
		d.volume[i] = 0
		if !m.index {
			v := p.volume * prof.vw[i] * noise * (0.4 + 0.75*math.Abs(x-prev)/sdMin)
			d.volume[i] = math.Round(v/100) * 100 // whole lots
		}
		prev = x
	}
	return d
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// minuteTime is the start of minute i of the day.
func (d *dayPath) minuteTime(i int, ss []session) time.Time {
	if i < d.morning {
		return ss[0].start.Add(time.Duration(i) * time.Minute).UTC()
	}
	return ss[1].start.Add(time.Duration(i-d.morning) * time.Minute).UTC()
}

// bar builds the bar of minutes [i, j) stamped t.
func (m *symbolModel) bar(d *dayPath, i, j int, t time.Time) Bar {
	open := 0.0
	if i > 0 {
		open = d.close[i-1]
	}
	hi, lo, vol := d.hi[i], d.lo[i], 0.0
	for k := i; k < j; k++ {
		hi, lo, vol = max(hi, d.hi[k]), min(lo, d.lo[k]), vol+d.volume[k]
	}
	b := Bar{
		Time:   t,
		Open:   m.price(d.openPx * math.Exp(open)),
		High:   m.price(d.openPx * math.Exp(hi)),
		Low:    m.price(d.openPx * math.Exp(lo)),
		Close:  m.price(d.openPx * math.Exp(d.close[j-1])),
		Volume: vol,
	}
	b.AdjClose = b.Close
	return b
}

// price puts a simulated price on the exchange's grid: TSE ticks for stocks, 0.01 for
// indices. Both roundings are monotone, which bar relies on.
func (m *symbolModel) price(p float64) float64 {
	if m.index {
		return math.Round(p*100) / 100
	}
	return RoundToTick(p)
}
