package web_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/app"
)

// update regenerates the screenshots in docs/screenshots:
//
//	go test ./internal/web -run Browser -update
var update = flag.Bool("update", false, "rewrite docs/screenshots")

// options are those of every test node: loopback only, on the ports of
// its last run (so a restarted node is found again), quick retries, and
// mesh mode on as in a real profile (mDNS stays off: loopback only).
func options(dir string) app.Options {
	o := app.Options{Dir: dir, LoopbackOnly: true, Mesh: true}
	o.Messenger.RetryMin, o.Messenger.RetryMax = 100*time.Millisecond, time.Second
	return o
}

// The browser tests share one headless Chromium (started by the first
// that needs it, stopped by TestMain) and run in parallel, each in tabs
// of its own.
var shared struct {
	once    sync.Once
	ctx     context.Context
	cancel  func()
	dataDir string
	skip    string
	err     error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if shared.cancel != nil {
		shared.cancel()
		os.RemoveAll(shared.dataDir)
	}
	os.Exit(code)
}

// browser returns the shared headless Chromium (each chromedp.NewContext
// of it is a tab), marking the test parallel. It skips the test if
// Chromium is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	shared.once.Do(startBrowser)
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	t.Parallel()
	return shared.ctx
}

func startBrowser() {
	path := os.Getenv("SAMIZDAT_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		shared.skip = "chromium is not installed (apt-get install chromium): the browser tests need a real headless Chromium"
		return
	}
	dir, err := os.MkdirTemp("", "samizdat-chromium-")
	if err != nil {
		shared.err = err
		return
	}
	shared.dataDir = dir
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("lang", "en-US"),
		// The alert siren is tested through the page's AudioContext.
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Voice notes record from a fake microphone (a beeping tone), with
		// no permission prompt.
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1000, 700),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	shared.ctx, shared.cancel = bctx, func() { bcancel(); acancel() }
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		shared.err = fmt.Errorf("start chromium: %w", err)
	}
}

// tab opens a new tab of the browser.
func tab(t *testing.T, b context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("browser: %v\npage: %s", err, pageText(ctx))
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v\npage: %s", what, err, pageText(ctx))
	}
}

func pageText(ctx context.Context) string {
	c, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(c, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(s) > 2000 {
		s = s[:2000]
	}
	return s
}

// setLang picks a language in the page's language menu.
func setLang(t *testing.T, ctx context.Context, lang string) {
	t.Helper()
	eval[bool](t, ctx, `(() => { const s = document.querySelector("#lang"); s.value = "`+lang+`"; s.dispatchEvent(new Event("change")); return true })()`)
}

// screenshot saves the page as docs/screenshots/name.png with -update.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*update {
		return
	}
	// No passing notice; let the last layout and the fonts settle.
	eval[bool](t, ctx, `(() => { const e = document.querySelector("#toast"); if (e) e.classList.remove("show"); return true })()`)
	do(t, ctx, chromedp.Sleep(250*time.Millisecond))
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startNode creates a profile without a passphrase and starts its node.
func startNode(t *testing.T, name string) *app.Node {
	t.Helper()
	dir := filepath.Join(t.TempDir(), strings.ToLower(name))
	if _, err := app.Init(context.Background(), dir, name, app.KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	return start(t, dir)
}

func start(t *testing.T, dir string) *app.Node {
	t.Helper()
	n, err := app.Start(context.Background(), options(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitingNode runs StartOrWait on an empty profile directory; it returns
// the web app's address and a function that waits for the node the page
// creates.
func waitingNode(t *testing.T) (url string, node func() *app.Node) {
	t.Helper()
	return waitingNodeIn(t, filepath.Join(t.TempDir(), "new"))
}

// waitingNodeIn is waitingNode on a given profile directory.
func waitingNodeIn(t *testing.T, dir string) (url string, node func() *app.Node) {
	t.Helper()
	var n *app.Node
	done := make(chan struct{})
	urls := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(done)
		n, _ = app.StartOrWait(ctx, options(dir), func(_, loginURL, _ string) {
			urls <- loginURL
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if n != nil {
			n.Close()
		}
	})
	node = func() *app.Node {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the node did not start after onboarding")
		}
		if n == nil {
			t.Fatal("StartOrWait failed")
		}
		return n
	}
	select {
	case u := <-urls:
		return u, node
	case <-done:
		t.Fatal("StartOrWait returned before waiting")
	case <-time.After(20 * time.Second):
		t.Fatal("StartOrWait did not start waiting")
	}
	return "", nil
}
