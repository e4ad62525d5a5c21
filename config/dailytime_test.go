package config

import (
	"strings"
	"testing"
)

func TestBillReconcileAt(t *testing.T) {
	base := map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for bk, bv := range base {
			m[bk] = bv
		}
		return m
	}
	c, err := Load(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.BillReconcileAt != (DailyTime{Hour: 10, Minute: 30}) || c.BillReconcileAt.String() != "10:30" || c.BillPollInterval.String() != "30m0s" {
		t.Fatalf("defaults: %+v %s", c.BillReconcileAt, c.BillPollInterval)
	}
	if h, m := c.BillReconcileAt.UTC(); h != 2 || m != 30 {
		t.Fatalf("10:30 Beijing is %02d:%02d UTC", h, m)
	}
	for in, want := range map[string]DailyTime{
		"off": {Off: true}, "OFF": {Off: true}, " Off ": {Off: true},
		"00:00": {}, "7:05": {Hour: 7, Minute: 5}, "23:59": {Hour: 23, Minute: 59}, "08:00": {Hour: 8},
	} {
		c, err := Load(env(with("BILL_RECONCILE_AT", in)))
		if err != nil || c.BillReconcileAt != want {
			t.Errorf("BILL_RECONCILE_AT=%q: %+v, %v", in, c.BillReconcileAt, err)
		}
	}
	for in, utc := range map[string]string{"00:00": "16:00", "07:59": "23:59", "08:00": "00:00", "23:30": "15:30"} {
		d, _ := ParseDailyTime(in)
		if h, m := d.UTC(); strings.TrimSpace(DailyTime{Hour: h, Minute: m}.String()) != utc {
			t.Errorf("%s Beijing = %02d:%02d UTC, want %s", in, h, m, utc)
		}
	}
	for _, in := range []string{"24:00", "10:60", "10", "10:3", "10:300", "-1:00", "ten", "10:30:00", "10h30", "on"} {
		_, err := Load(env(with("BILL_RECONCILE_AT", in)))
		if err == nil || !strings.Contains(err.Error(), "BILL_RECONCILE_AT") {
			t.Errorf("BILL_RECONCILE_AT=%q: %v", in, err)
		}
	}
	if _, err := Load(env(with("BILL_POLL_INTERVAL", "0s"))); err == nil || !strings.Contains(err.Error(), "BILL_POLL_INTERVAL") {
		t.Errorf("BILL_POLL_INTERVAL=0s: %v", err)
	}
}
