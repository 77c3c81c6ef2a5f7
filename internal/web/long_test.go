package web_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/store"
)

// longConversation is the size of the conversation of
// TestBrowserLongConversation.
const longConversation = 10000

// fullScroll makes TestBrowserLongConversation scroll to the very first
// message (40 pages; the figures of docs/BENCHMARKS.md) instead of 8 pages.
var fullScroll = flag.Bool("full-scroll", false, "scroll the 10,000-message conversation to its start")

// TestBrowserLongConversation opens a conversation of 10,000 messages
// spread over 50 days: the page shows the newest page at once, reads
// older pages as it is scrolled up (never the whole conversation at once),
// and then holds each message read exactly once, in order, with one day
// separator per day (with -full-scroll: all the way to the first message). With -v it logs first paint and the
// times taken (docs/BENCHMARKS.md).
func TestBrowserLongConversation(t *testing.T) {
	b := browser(t)
	na := startNode(t, "Alice")
	nb := startNode(t, "Bob")
	link, err := nb.Messenger.Invite(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c, err := na.Messenger.AddContact(t.Context(), link, "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	fill(t, na, c.ID)
	t.Logf("stored %d messages in %v", longConversation, time.Since(t0))

	p := tab(t, b)
	do(t, p, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS(`.chat[data-name="Bob"]`)))
	fcp := eval[float64](t, p, `(performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime || -1`)
	listShown := eval[float64](t, p, `performance.now()`)
	// Again in the same tab, as when the app is reopened (the token is in
	// the tab's sessionStorage by now).
	do(t, p, chromedp.Navigate("http://"+na.APIAddr+"/"), chromedp.WaitVisible(chromedp.CSS(`.chat[data-name="Bob"]`)))
	fcp2 := eval[float64](t, p, `(performance.getEntriesByName("first-contentful-paint")[0] || {}).startTime || -1`)

	open := eval[float64](t, p, `new Promise(ok => {
		const t0 = performance.now();
		document.querySelector('.chat[data-name="Bob"]').click();
		const check = () => document.querySelector('.msg .body') && [...document.querySelectorAll('.msg .body')].pop().textContent === "message `+fmt.Sprint(longConversation-1)+`"
			? requestAnimationFrame(() => ok(performance.now() - t0)) : requestAnimationFrame(check);
		check();
	})`)
	if n := eval[int](t, p, `document.querySelectorAll(".msg").length`); n != 100 {
		t.Errorf("first page shows %d messages, want 100", n)
	}
	if !eval[bool](t, p, `(() => { const m = document.querySelector("#msgs"); return m.scrollHeight - m.scrollTop - m.clientHeight < 5 })()`) {
		t.Error("the conversation did not open at its newest message")
	}

	// Scroll to the top until the first message is there.
	want := 100 + 8*250 // the first page, then 8 older ones
	if *fullScroll {
		want = longConversation
	}
	scroll := eval[float64](t, p, `(async () => {
		const box = document.querySelector("#msgs");
		const count = () => document.querySelectorAll(".msg").length;
		const sleep = (ms) => new Promise(r => setTimeout(r, ms));
		const t0 = performance.now();
		while (count() < `+fmt.Sprint(want)+`) {
			const n = count();
			box.scrollTop = 0;
			box.dispatchEvent(new Event("scroll"));
			const deadline = performance.now() + 5000;
			while (count() <= n) {
				if (performance.now() > deadline) return -1;
				await sleep(2);
			}
		}
		return performance.now() - t0;
	})()`)
	if scroll < 0 {
		t.Fatalf("scrolling up stopped loading older messages at %d messages", eval[int](t, p, `document.querySelectorAll(".msg").length`))
	}
	if n := eval[int](t, p, `new Set([...document.querySelectorAll(".msg")].map(e => e.dataset.id)).size`); n != want {
		t.Errorf("after scrolling up the page holds %d distinct messages, want %d", n, want)
	}
	first := fmt.Sprintf("message %d", longConversation-want)
	if s := eval[string](t, p, `document.querySelector(".msg .body").textContent`); s != first {
		t.Errorf("the first message shown is %q, want %q", s, first)
	}
	if !eval[bool](t, p, `[...document.querySelectorAll(".msg")].every((e, i, a) => i == 0 || +a[i-1].dataset.seq < +e.dataset.seq)`) {
		t.Error("messages out of order after paging")
	}
	days := (want + 199) / 200 // 200 a day, counted from the newest
	if n := eval[int](t, p, `document.querySelectorAll(".day").length`); n != days {
		t.Errorf("%d day separators, want %d", n, days)
	}
	if n := eval[int](t, p, `new Set([...document.querySelectorAll(".day")].map(e => e.dataset.day)).size`); n != days {
		t.Errorf("%d distinct days among the separators, want %d", n, days)
	}
	t.Logf("first contentful paint %.0f ms (reopened: %.0f ms); chat list shown by %.0f ms; %d-message conversation opened in %.0f ms; scrolled up through %d messages in %.0f ms",
		fcp, fcp2, listShown, longConversation, open, want, scroll)
}

// fill stores longConversation messages with the contact, 200 a day over
// 50 days, every third one outgoing (delivered).
func fill(t *testing.T, n *app.Node, cid int64) {
	t.Helper()
	start := time.Now().AddDate(0, 0, -49)
	start = time.Date(start.Year(), start.Month(), start.Day(), 8, 0, 0, 0, time.Local)
	err := n.Store.Update(context.Background(), func(tx *store.Tx) error {
		for i := range longConversation {
			at := start.AddDate(0, 0, i/200).Add(time.Duration(i%200) * time.Minute)
			m := &store.Message{ID: fmt.Sprintf("%032x", i), ContactID: cid, Body: fmt.Sprintf("message %d", i), SentAt: at, At: at}
			if i%3 == 0 {
				m.Outgoing, m.State = true, store.StateDelivered
			}
			if _, err := tx.InsertMessage(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
