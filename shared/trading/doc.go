// Package trading is the paper-trading domain: the order a client sends, the Tokyo Stock
// Exchange's rules an order must obey (lots of 100, the tick-size tables for TOPIX 500 and
// other issues, the daily price-limit table), the pre-trade risk checks, and the fill
// simulation against market-data bars. Money and prices are shopspring/decimal; quantities are
// whole shares.
//
// Every refusal names its rule (a Rule constant), so a client can tell a bad tick from a
// breached risk limit without parsing a message.
package trading
