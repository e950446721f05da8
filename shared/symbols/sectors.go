package symbols

import (
	"slices"
	"strings"
)

// Sectors33 maps the TSE 33-sector codes to their English names, as the TSE publishes them.
var Sectors33 = map[string]string{
	"0050": "Fishery, Agriculture & Forestry",
	"1050": "Mining",
	"2050": "Construction",
	"3050": "Foods",
	"3100": "Textiles & Apparels",
	"3150": "Pulp & Paper",
	"3200": "Chemicals",
	"3250": "Pharmaceutical",
	"3300": "Oil & Coal Products",
	"3350": "Rubber Products",
	"3400": "Glass & Ceramics Products",
	"3450": "Iron & Steel",
	"3500": "Nonferrous Metals",
	"3550": "Metal Products",
	"3600": "Machinery",
	"3650": "Electric Appliances",
	"3700": "Transportation Equipment",
	"3750": "Precision Instruments",
	"3800": "Other Products",
	"4050": "Electric Power & Gas",
	"5050": "Land Transportation",
	"5100": "Marine Transportation",
	"5150": "Air Transportation",
	"5200": "Warehousing & Harbor Transportation Services",
	"5250": "Information & Communication",
	"6050": "Wholesale Trade",
	"6100": "Retail Trade",
	"7050": "Banks",
	"7100": "Securities & Commodity Futures",
	"7150": "Insurance",
	"7200": "Other Financing Business",
	"8050": "Real Estate",
	"9050": "Services",
}

// SectorByName finds a 33-sector by its English name (any case) or its code, returning the
// code and the canonical name.
func SectorByName(s string) (code, name string, ok bool) {
	s = strings.TrimSpace(s)
	if n, ok := Sectors33[s]; ok {
		return s, n, true
	}
	for c, n := range Sectors33 {
		if strings.EqualFold(n, s) {
			return c, n, true
		}
	}
	return "", "", false
}

// SectorNames returns the 33 English sector names, sorted.
func SectorNames() []string {
	var out []string
	for _, n := range Sectors33 {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
