package trading

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/httpx"
)

// Side is buy or sell.
type Side string

const (
	Buy  Side = "buy"
	Sell Side = "sell"
)

// Type is market or limit.
type Type string

const (
	Market Type = "market"
	Limit  Type = "limit"
)

// LotSize is the TSE trading unit for every domestic stock since 2018.
const LotSize = 100

// Bounds on what one order may ask for; beyond them the request is refused as malformed
// rather than trusted to the risk checks (and to decimal arithmetic on absurd numbers).
const (
	// MaxQuantity is 100 million shares: more than the float of most TSE stocks.
	MaxQuantity = 100_000_000
)

// MaxPrice is above the highest-priced TSE stock by two orders of magnitude.
var MaxPrice = decimal.NewFromInt(1_000_000_000)

// OrderRequest is the body of POST /api/v1/execution/trade.
type OrderRequest struct {
	Symbol   string `json:"symbol"`
	Side     Side   `json:"side"`
	Type     Type   `json:"type"`
	Quantity int64  `json:"quantity"`
	// LimitPrice is required for limit orders and refused on market orders. It may be sent
	// as a JSON string ("2500.5") or number.
	LimitPrice *decimal.Decimal `json:"limit_price,omitempty"`
}

// DecodeOrder reads one order from untrusted bytes: strict JSON (no unknown fields, one
// value), then the shape rules of Validate. Errors are *httpx.Error (400) naming the rule.
func DecodeOrder(body []byte, u Universe) (OrderRequest, error) {
	var req OrderRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if r := quantityTypeError(err); r != nil {
			return req, r.HTTPError(nil)
		}
		return req, httpx.Invalid("request body is not a valid order: " + jsonReason(err))
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return req, httpx.Invalid("request body must hold a single JSON value")
	}
	if err := req.Validate(u); err != nil {
		return req, err
	}
	return req, nil
}

// quantityTypeError names the quantity rule for a quantity that is a JSON number but not an
// int64 (1e30, 1.5): the client sent a quantity, just not one within the bounds in whole
// shares. A quantity of another JSON type stays a plain malformed-body error.
func quantityTypeError(err error) *Rejection {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field == "quantity" && strings.HasPrefix(typ.Value, "number") {
		return reject(RuleQuantity, "quantity must be a whole number of shares between %d and %d", LotSize, MaxQuantity)
	}
	return nil
}

// jsonReason is a caller-safe description of a decoding error.
func jsonReason(err error) string {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return "malformed JSON"
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated body"
	}
	// Unknown fields and decimal parse errors; their messages name only the field or value.
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// Validate checks the order's shape, normalises the symbol, and reports the first rule it
// breaks: a shape rule as a 400 error, a well-formed symbol that is not in u as a 422
// unknown_symbol. u also decides the tick table of a limit price, so the listing is checked
// before the tick grid (an unlisted symbol has no tick table) and after every other shape rule.
func (o *OrderRequest) Validate(u Universe) error {
	if r := o.check(u); r != nil {
		return r.HTTPError(nil)
	}
	return nil
}

func (o *OrderRequest) check(u Universe) *Rejection {
	sym, ok := NormalizeSymbol(o.Symbol)
	if !ok {
		return reject(RuleSymbol, "symbol %q is not a TSE stock code such as 7203.T", truncate(o.Symbol))
	}
	o.Symbol = sym
	switch o.Side {
	case Buy, Sell:
	default:
		return reject(RuleSide, "side must be buy or sell")
	}
	switch o.Type {
	case Market, Limit:
	default:
		return reject(RuleOrderType, "type must be market or limit")
	}
	if o.Quantity <= 0 || o.Quantity > MaxQuantity {
		return reject(RuleQuantity, "quantity must be between %d and %d shares", LotSize, MaxQuantity)
	}
	if o.Quantity%LotSize != 0 {
		return reject(RuleLotSize, "quantity %d is not a multiple of the %d-share lot", o.Quantity, LotSize)
	}
	switch o.Type {
	case Market:
		if o.LimitPrice != nil {
			return reject(RulePrice, "a market order takes no limit_price")
		}
	case Limit:
		if o.LimitPrice == nil {
			return reject(RulePrice, "a limit order needs limit_price")
		}
		p := *o.LimitPrice
		// Bound the exponent and digits before any arithmetic: decimal rescales to compare,
		// and 1e-999999999 would allocate a billion-digit integer.
		if e := p.Exponent(); e < -maxPriceDecimals || e > 12 || p.NumDigits() > 24 {
			return reject(RulePrice, "limit_price must be positive, at most %s, with at most %d decimals", MaxPrice, maxPriceDecimals)
		}
		if !p.IsPositive() || p.GreaterThan(MaxPrice) {
			return reject(RulePrice, "limit_price must be positive and at most %s", MaxPrice)
		}
	}
	if !u.Listed(o.Symbol) {
		return reject(RuleUnknownSymbol, "%s is not in the symbol universe", o.Symbol)
	}
	if o.Type == Limit {
		p := *o.LimitPrice
		if !OnTick(p, u.TOPIX500(o.Symbol)) {
			return reject(RuleTickSize, "limit_price %s is off the tick grid (tick %s at that price)", p, TickSize(p, u.TOPIX500(o.Symbol)))
		}
	}
	return nil
}

// maxPriceDecimals allows the TOPIX 500 table's 0.1 tick with room to spare.
const maxPriceDecimals = 4

func truncate(s string) string {
	r := []rune(s)
	if len(r) > 32 {
		return string(r[:32]) + "…"
	}
	return s
}

// Order is an order as the ledger records it.
type Order struct {
	ID         string           `json:"order_id"`
	Symbol     string           `json:"symbol"`
	Side       Side             `json:"side"`
	Type       Type             `json:"type"`
	Quantity   int64            `json:"quantity"`
	LimitPrice *decimal.Decimal `json:"limit_price,omitempty"`
	// ExpiresAt ends a resting limit order: TSE orders are day orders.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Fill is one execution of an order.
type Fill struct {
	Quantity int64           `json:"quantity"`
	Price    decimal.Decimal `json:"price"`
	Fee      decimal.Decimal `json:"fee"`
	// Reference is the market price the fill was simulated against (before slippage).
	Reference decimal.Decimal `json:"reference"`
}

// Notional is quantity × price.
func (f Fill) Notional() decimal.Decimal { return f.Price.Mul(decimal.NewFromInt(f.Quantity)) }
