package config

import (
	"fmt"
	"strconv"
	"strings"
)

// DailyTime is a time of day in Asia/Shanghai (BILL_RECONCILE_AT), or off.
type DailyTime struct {
	Off    bool
	Hour   int // 0–23
	Minute int // 0–59
}

// ParseDailyTime reads "HH:MM" (24-hour clock, Beijing time) or "off".
func ParseDailyTime(s string) (DailyTime, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return DailyTime{Off: true}, nil
	}
	hh, mm, ok := strings.Cut(s, ":")
	bad := fmt.Errorf("want HH:MM (Asia/Shanghai, e.g. 10:30) or off, got %q", s)
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !digits(hh) || !digits(mm) {
		return DailyTime{}, bad
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	if h > 23 || m > 59 {
		return DailyTime{}, bad
	}
	return DailyTime{Hour: h, Minute: m}, nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// String is "off" or "HH:MM".
func (d DailyTime) String() string {
	if d.Off {
		return "off"
	}
	return fmt.Sprintf("%02d:%02d", d.Hour, d.Minute)
}

// UTC is the same time of day in UTC: Shanghai is UTC+8 all year (no
// daylight saving), so a daily UTC calendar fires at the Beijing time.
func (d DailyTime) UTC() (hour, minute int) {
	return (d.Hour + 24 - 8) % 24, d.Minute
}
