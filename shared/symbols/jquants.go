package symbols

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Lister fetches a current universe from an authoritative source.
type Lister interface {
	List(ctx context.Context, date time.Time) (*Universe, error)
}

// ErrSource wraps every failure of a Lister's source (network, status, malformed body), so
// that callers can keep serving the list they have.
var ErrSource = errors.New("symbol list source failed")

// JQuants lists the issues of J-Quants' listed-issue master, GET /v2/equities/master
// (Date, Code, CoName, CoNameEn, S33, S33Nm, ScaleCat, Mkt, MktNm, …), following
// pagination_key. Only ordinary shares on the Prime, Standard and Growth segments are kept:
// TOKYO PRO MARKET and "other" issues are not in the platform's universe, and a five-digit
// code whose check digit is not 0 is a preferred share. Market caps are not in the master and
// stay unknown.
type JQuants struct {
	BaseURL string       // default https://api.jquants.com
	APIKey  string       // sent as x-api-key
	Client  *http.Client // its Timeout bounds each page; default 15s
}

var _ Lister = (*JQuants)(nil)

// jquantsMarkets maps J-Quants market codes to segments.
var jquantsMarkets = map[string]Segment{"0111": Prime, "0112": Standard, "0113": Growth}

type jquantsMaster struct {
	Data []struct {
		Date     string `json:"Date"`
		Code     string `json:"Code"`
		CoName   string `json:"CoName"`
		CoNameEn string `json:"CoNameEn"`
		S33      string `json:"S33"`
		S33Nm    string `json:"S33Nm"`
		ScaleCat string `json:"ScaleCat"`
		Mkt      string `json:"Mkt"`
		MktNm    string `json:"MktNm"`
	} `json:"data"`
	PaginationKey string `json:"pagination_key"`
}

// maxPages bounds pagination so a server that keeps answering with a key cannot loop us.
const maxPages = 200

// List fetches the master as of date (zero: today, as J-Quants defines it).
func (j *JQuants) List(ctx context.Context, date time.Time) (*Universe, error) {
	if strings.TrimSpace(j.APIKey) == "" {
		return nil, errors.New("symbols: jquants needs an API key")
	}
	base := strings.TrimRight(j.BaseURL, "/")
	if base == "" {
		base = "https://api.jquants.com"
	}
	hc := j.Client
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	params := url.Values{}
	if !date.IsZero() {
		params.Set("date", date.Format(time.DateOnly))
	}
	var (
		syms   []Symbol
		asOf   time.Time
		seen   = map[string]bool{}
		byCode = map[string]bool{}
	)
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("%w: jquants: more than %d pages", ErrSource, maxPages)
		}
		m, err := j.page(ctx, hc, base+"/v2/equities/master?"+params.Encode())
		if err != nil {
			return nil, err
		}
		for _, row := range m.Data {
			seg, ok := jquantsMarkets[row.Mkt]
			if !ok || len(row.Code) != 5 || row.Code[4] != '0' {
				continue
			}
			code := row.Code[:4]
			if byCode[code] {
				continue
			}
			byCode[code] = true
			if d, err := time.Parse(time.DateOnly, row.Date); err == nil && d.After(asOf) {
				asOf = d
			}
			sector := row.S33Nm // Japanese in the master; the English name when the code is known
			if en, ok := Sectors33[row.S33]; ok {
				sector = en
			}
			scale := strings.TrimSpace(row.ScaleCat)
			if scale == "-" {
				scale = ""
			}
			syms = append(syms, Symbol{
				Code: code, Ticker: Ticker(code), NameJA: row.CoName, NameEN: row.CoNameEn, Segment: seg,
				SectorCode: row.S33, Sector: sector, Scale: scale, TOPIX500: InTOPIX500(scale), LotSize: DefaultLotSize,
			})
		}
		if m.PaginationKey == "" {
			break
		}
		if seen[m.PaginationKey] {
			return nil, fmt.Errorf("%w: jquants: pagination_key %q repeated", ErrSource, m.PaginationKey)
		}
		seen[m.PaginationKey] = true
		params.Set("pagination_key", m.PaginationKey)
	}
	if len(syms) == 0 {
		return nil, fmt.Errorf("%w: jquants: no listed issues in the answer", ErrSource)
	}
	if asOf.IsZero() {
		asOf = date
	}
	u, err := NewUniverse(syms, asOf, "jquants")
	if err != nil {
		return nil, fmt.Errorf("%w: jquants: %v", ErrSource, err)
	}
	return u, nil
}

func (j *JQuants) page(ctx context.Context, hc *http.Client, u string) (*jquantsMaster, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-api-key", j.APIKey)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: jquants: %v", ErrSource, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: jquants: reading body: %v", ErrSource, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, fmt.Errorf("%w: jquants: HTTP %d: %s", ErrSource, resp.StatusCode, e.Message)
	}
	var m jquantsMaster
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: jquants: malformed master: %v", ErrSource, err)
	}
	if m.Data == nil {
		return nil, fmt.Errorf("%w: jquants: master has no data array", ErrSource)
	}
	return &m, nil
}
