package testsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// systemChromium is Debian's chromium package; $BATON_CHROMIUM overrides it.
const systemChromium = "/usr/bin/chromium"

// artifactsDir holds the screenshots of the browser tests (git-ignored).
const artifactsDir = "artifacts"

// chromiumPath is the browser the UI test drives. Without it the test
// skips on a developer machine and fails in CI (CI set, not "false"),
// where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("BATON_CHROMIUM")
	if p == "" {
		p = systemChromium
	}
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("the Web UI test needs Chromium at %s (apt-get install chromium, or set BATON_CHROMIUM): %v", p, err)
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal(msg + " (CI is set: .ci/run installs it)")
		}
		t.Skip(msg)
	}
	return p
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// tab's context; it stops at the test's end (after a failed test's
// screenshot). Bound what runs in it with a deadline.
// The background-networking flags matter here: on a closed network
// Chromium's own update and sync connections are refused and it would keep
// retrying them.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, so a broken install fails here, clearly.
	// (On the tab's own context: the browser lives as long as the context
	// of its first action.)
	require.NoError(t, chromedp.Do(ctx), "start %s", path)
	// A failed test leaves a picture of where the browser was (this runs
	// before the browser stops).
	t.Cleanup(func() {
		if t.Failed() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)); err == nil {
				path := filepath.Join(artifactsDir, strings.ReplaceAll(t.Name(), "/", "-")+"-failed.png")
				if os.MkdirAll(artifactsDir, 0o755) == nil && os.WriteFile(path, png, 0o644) == nil {
					t.Logf("the browser when the test failed: %s", path)
				}
			}
		}
	})
	return ctx
}

// screenshot saves the tab's viewport (the Web UI scrolls inside it) as
// artifacts/<name>.png and returns its path.
func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(artifactsDir, 0o755))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err, "screenshot %s", name)
	path := filepath.Join(artifactsDir, name+".png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	abs, err := filepath.Abs(path)
	require.NoError(t, err)
	t.Logf("screenshot: %s", abs)
	return path
}

// pageText is the visible text of the page (for assertions and failure
// messages).
func pageText(ctx context.Context) (string, error) {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "", fmt.Errorf("read the page's text: %w", err)
	}
	return s, nil
}

// waitText waits until the page's visible text contains every one of
// want, polling; on timeout it says what the page showed instead.
func waitText(ctx context.Context, want ...string) error {
	last := ""
	err := Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		s, err := pageText(ctx)
		if err != nil {
			return false, nil
		}
		last = s
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("page never showed %q: %w; it showed:\n%s", want, err, last)
	}
	return nil
}

// visible waits (up to ctx's deadline) for a visible element that matches
// the CSS selector and whose text contains text, and returns a selector for
// exactly that element. The Web UI renders some controls twice, one for
// wide and one for narrow screens, and hides one of them.
func visible(ctx context.Context, css, text string) (chromedp.CSS, error) {
	markSeq.Add(1)
	mark := fmt.Sprintf("m%d", markSeq.Load())
	find := `(css, text, mark) => {
		const el = [...document.querySelectorAll(css)].find(e =>
			e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden" && (!text || (e.innerText || "").includes(text)));
		if (!el) return false;
		el.setAttribute("data-baton-mark", mark);
		return true;
	}`
	if _, err := chromedp.Run(ctx, chromedp.PollFunction[bool](find, chromedp.WithPollingArgs(css, text, mark),
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))); err != nil {
		return "", fmt.Errorf("wait for a visible %s showing %q: %w", css, text, err)
	}
	return chromedp.CSS(`[data-baton-mark="` + mark + `"]`), nil
}

var markSeq atomic.Int64

// clickVisible clicks the visible element that matches css and shows
// text, once there is one.
func clickVisible(ctx context.Context, css, text string) error {
	sel, err := visible(ctx, css, text)
	if err != nil {
		return err
	}
	if err := chromedp.Do(ctx, chromedp.Click(sel, chromedp.NodeVisible)); err != nil {
		return fmt.Errorf("click %s showing %q: %w", css, text, err)
	}
	return nil
}

// waitRows waits until the workflow list shows exactly the workflows ids,
// one row each, in any order.
func waitRows(ctx context.Context, ids ...string) error {
	last := []string{}
	err := Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('[data-testid="workflows-summary-configurable-table-row"]')].map(r => r.innerText)`))
		if err != nil {
			return false, nil
		}
		last = rows
		if len(rows) != len(ids) {
			return false, nil
		}
		for _, id := range ids {
			n := 0
			for _, r := range rows {
				if strings.Contains(r, id) {
					n++
				}
			}
			if n != 1 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("the workflow list never showed exactly %q: %w; its rows: %q", ids, err, last)
	}
	return nil
}

// metadata is what the workflow page's User Metadata tab shows, as
// rendered (the UI renders each field's markdown in its own frame).
type metadata struct {
	Summary, Details, Current string
	// CurrentBold is the current details' first bold text.
	CurrentBold string
}

// waitMetadata waits until the User Metadata tab shows the summary, the
// details and current details whose bold lead is bold (the phase).
func waitMetadata(ctx context.Context, bold string) (metadata, error) {
	var md metadata
	err := Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		// Each frame's heading is the last h3 before it in the nearest
		// ancestor that has one.
		m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
			const out = {};
			for (const f of document.querySelectorAll('iframe[title="output"]')) {
				let a = f.parentElement;
				while (a && !a.querySelector('h3')) a = a.parentElement;
				if (!a) continue;
				const hs = [...a.querySelectorAll('h3')].filter(h => h.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING);
				const body = f.contentDocument && f.contentDocument.body;
				if (!hs.length || !body) continue;
				const name = hs[hs.length - 1].innerText.trim();
				out[name] = body.innerText.trim();
				const b = body.querySelector('strong, b');
				out[name + "/bold"] = b ? b.innerText.trim() : "";
			}
			return out;
		})()`))
		if err != nil {
			return false, nil
		}
		md = metadata{Summary: m["Summary"], Details: m["Details"], Current: m["Current Details"], CurrentBold: m["Current Details/bold"]}
		return md.Summary != "" && md.Details != "" && md.CurrentBold == bold, nil
	})
	if err != nil {
		return md, fmt.Errorf("the User Metadata tab never showed current details in phase %q: %w; it showed %+v", bold, err, md)
	}
	return md, nil
}

// waitStill waits until the element has stopped moving: the same box on
// three polls in a row (after a re-layout, a click must not land where
// the element was).
func waitStill(ctx context.Context, sel chromedp.CSS) error {
	last, same := "", 0
	err := Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		r, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`JSON.stringify(document.querySelector(`+jsString(string(sel))+`).getBoundingClientRect())`))
		if err != nil {
			return false, nil
		}
		if r == last {
			same++
		} else {
			last, same = r, 0
		}
		return same >= 2, nil
	})
	if err != nil {
		return fmt.Errorf("%s kept moving: %w", sel, err)
	}
	return nil
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
