// The corpus app for sentry-go: each bug raised a few times, in the build named by the first argument.
// Build "b" moves the code, adds closures before the failing ones (so the compiler renumbers them) and is
// built with -trimpath (standard library paths lose GOROOT). Labels travel in the tag "bug".
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/getsentry/sentry-go"
)

type Order struct {
	ID    int
	Items []int
}

type Store struct{ orders map[int]*Order }

func (s *Store) Total(id int) int {
	o := s.orders[id]
	total := 0
	for _, p := range o.Items { // nil order: a nil pointer dereference
		total += p
	}
	return total
}

func capture(bug string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			hub := sentry.CurrentHub().Clone()
			hub.ConfigureScope(func(scope *sentry.Scope) { scope.SetTag("bug", bug) })
			hub.RecoverWithContext(nil, r)
		}
	}()
	fn()
}

func report(bug string, err error) {
	hub := sentry.CurrentHub().Clone()
	hub.ConfigureScope(func(scope *sentry.Scope) { scope.SetTag("bug", bug) })
	hub.CaptureException(err)
}

func parseQuantity(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("quantity %q: %w", s, err)
	}
	return n, nil
}

func walk(depth, limit int) int {
	if depth == limit {
		var m map[string]int
		m["overflow"] = depth // assignment to entry in nil map
	}
	return walk(depth+1, limit) + 1
}

func main() {
	release := map[string]string{"a": "shop-go@2.3.0", "b": "shop-go@2.4.0"}[os.Args[1]]
	if err := sentry.Init(sentry.ClientOptions{Dsn: os.Getenv("SENTRY_DSN"), Release: release,
		AttachStacktrace: true}); err != nil {
		panic(err)
	}
	store := &Store{orders: map[int]*Order{1: {ID: 1, Items: []int{3}}}}
	for i := 0; i < 3; i++ {
		/*EXTRA_CLOSURE*/
		capture("go-nil-order-total", func() { store.Total(100 + i) })
		capture("go-closure-index", func() {
			items := []int{1, 2}
			func() { _ = items[2+i] }()
		})
		capture("go-nil-map-recursion", func() { walk(0, 5+i*3) })
		if _, err := parseQuantity(fmt.Sprintf("%dx", i)); err != nil {
			report("go-parse-quantity", err)
		}
		var v struct{ N int }
		if err := json.Unmarshal([]byte(fmt.Sprintf(`{"N": "%d"}`, i)), &v); err != nil {
			report("go-json-unmarshal", err)
		}
		report("go-sentinel-error", fmt.Errorf("reserve stock for order %d: %w", 7000+i, errors.New("warehouse closed")))
		hub := sentry.CurrentHub().Clone()
		hub.ConfigureScope(func(scope *sentry.Scope) { scope.SetTag("bug", "go-message-slow-query") })
		hub.CaptureMessage(fmt.Sprintf("slow query on 2001:db8:0:%x::5 took %s at %s", i+1,
			time.Duration(1500+i*321)*time.Millisecond, time.Date(2026, 12, 7, 10, i, 3, 0, time.UTC).Format(time.RFC3339Nano)))
	}
	sentry.Flush(10 * time.Second)
}
