package wechatpay

import (
	"errors"
	"fmt"
	"time"
)

// Answers about a day's trade bill that are no failure of the call; test
// for them with errors.Is.
var (
	// ErrBillNotReady: WeChat is still making the bill (v3
	// STATEMENT_CREATING, v2 "Bill Creating"); ask again later. Bills are
	// made from 09:00 and ready after 10:00 the next day, Beijing time.
	ErrBillNotReady = errors.New("wechatpay: the bill is not ready yet")
	// ErrNoBill: WeChat has no bill for that day because it had no trade
	// (v3 NO_STATEMENT_EXIST, v2 "No Bill Exist").
	ErrNoBill = errors.New("wechatpay: no bill for that day")
	// ErrBillLinkExpired: the download link was refused (they last minutes);
	// ask for the bill again to get a fresh one.
	ErrBillLinkExpired = errors.New("wechatpay: the bill's download link was refused")
)

// BillLink is where a day's trade bill (bill_type ALL, gzip) is to be had.
// API v3 answers it to tradebill; API v2 has nothing to ask first and
// leaves everything but Date empty.
type BillLink struct {
	Date        string `json:"date"`         // YYYY-MM-DD, a Beijing day
	HashType    string `json:"hash_type"`    // SHA1 (v3); "" when the bill comes without a hash (v2)
	HashValue   string `json:"hash_value"`   // hex SHA-1 of the uncompressed bill
	DownloadURL string `json:"download_url"` // v3: a short-lived link, fetched with a signed GET
}

// BillDateLayout is a bill's date as API v3 and this service write it.
const BillDateLayout = "2006-01-02"

// BillDay parses a bill date (YYYY-MM-DD) and returns the start of that
// day in Beijing: the bill covers [start, start+24h). Anything but a real
// date in exactly that form is an error wrapping ErrMalformed.
func BillDay(date string) (time.Time, error) {
	t, err := time.ParseInLocation(BillDateLayout, date, Beijing)
	if err != nil || t.Format(BillDateLayout) != date {
		return time.Time{}, fmt.Errorf("bill date %q is not YYYY-MM-DD: %w", Truncate(date, 20), ErrMalformed)
	}
	return t, nil
}
