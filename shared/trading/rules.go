package trading

import (
	"fmt"

	"github.com/day-trade/platform/shared/httpx"
)

// Rule names the check an order failed. Rules are part of the API: clients act on them.
type Rule string

// Order-shape rules: the request itself is wrong (400).
const (
	RuleSymbol    Rule = "symbol"     // not a TSE stock code such as 7203.T
	RuleSide      Rule = "side"       // not buy or sell
	RuleOrderType Rule = "order_type" // not market or limit
	RuleQuantity  Rule = "quantity"   // not positive, above MaxQuantity, or not an int64 (1e30, 1.5)
	RuleLotSize   Rule = "lot_size"   // not a whole number of 100-share lots
	RulePrice     Rule = "price"      // missing/negative/huge limit price, or a price on a market order
	RuleTickSize  Rule = "tick_size"  // limit price off the TSE tick grid
)

// Market rules: the order is well formed but the market refuses it now (422).
const (
	RuleUnknownSymbol   Rule = "unknown_symbol"    // not in the symbol universe, or the data provider does not know it
	RuleMarketHours     Rule = "market_hours"      // a market order outside the TSE sessions
	RuleDailyPriceLimit Rule = "daily_price_limit" // limit price beyond today's price band
)

// Risk rules: the order would break the account's limits (422, recorded as OrderRejected).
const (
	RuleMaxPosition   Rule = "max_position"     // position in one symbol above MaxPositionPct of equity
	RuleMaxExposure   Rule = "max_exposure"     // gross exposure above MaxExposurePct of equity
	RuleDailyLoss     Rule = "daily_loss_limit" // today's loss has reached DailyLossLimit
	RuleMaxOpenOrders Rule = "max_open_orders"  // too many resting orders
	RuleBuyingPower   Rule = "buying_power"     // not enough cash for a buy
	RuleShortSelling  Rule = "short_selling"    // selling more than is held (cash account, no shorts)
)

// Rejection is an order refused by a rule. It is an error that converts to the HTTP
// vocabulary with HTTPError.
type Rejection struct {
	Rule    Rule   `json:"rule"`
	Message string `json:"message"`
}

func (r *Rejection) Error() string { return fmt.Sprintf("%s: %s", r.Rule, r.Message) }

func reject(rule Rule, format string, args ...any) *Rejection {
	return &Rejection{Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// Code is the HTTP error class of the rule: 400 for a malformed order, 422 for an order
// the market or the risk limits refuse.
func (r Rule) Code() httpx.Code {
	switch r {
	case RuleSymbol, RuleSide, RuleOrderType, RuleQuantity, RuleLotSize, RulePrice, RuleTickSize:
		return httpx.CodeInvalid
	}
	return httpx.CodeUnprocessable
}

// field is the request field a shape rule is about.
func (r Rule) field() string {
	switch r {
	case RuleSymbol:
		return "symbol"
	case RuleSide:
		return "side"
	case RuleOrderType:
		return "type"
	case RuleQuantity, RuleLotSize:
		return "quantity"
	case RulePrice, RuleTickSize, RuleDailyPriceLimit:
		return "limit_price"
	}
	return ""
}

// HTTPError is the problem for rejection r; extra fields (e.g. the order id) are added to
// the problem's top level beside "rule".
func (r *Rejection) HTTPError(extra map[string]any) *httpx.Error {
	e := &httpx.Error{Code: r.Rule.Code(), Message: r.Message, Extra: map[string]any{"rule": string(r.Rule)}, Err: r}
	for k, v := range extra {
		e.Extra[k] = v
	}
	if f := r.Rule.field(); f != "" && e.Code == httpx.CodeInvalid {
		e.Fields = []httpx.FieldError{{Field: f, Reason: string(r.Rule) + ": " + r.Message}}
	}
	return e
}
