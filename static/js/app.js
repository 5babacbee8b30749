// radar_app's only script besides htmx. It lives in a file because the Content Security
// Policy allows no inline scripts and no eval (which also rules out htmx's hx-on).

// Any button with data-dismiss="<selector>" removes its closest match (toast close buttons).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-dismiss]");
  if (button) {
    button.closest(button.dataset.dismiss)?.remove();
  }
});

// ------------------------------------------------------------------------------ toasts
// A toast (templates/jobs/_toasts.html, appended to #toasts by the notification poll)
// closes itself after #toasts' data-toast-seconds. Only the time the user could read it
// counts: every toast's clock stops while the pointer is on a toast or focus is in one
// (so none moves from under the pointer as another closes), while it is scrolled out of
// view and while the tab is hidden. Each toast has its own clock, so several arriving at
// once each stay their full time.

const toastClocks = new Map();

function toastHeld(toast, clock) {
  return (
    document.hidden ||
    !clock.inView ||
    toast.parentElement?.querySelector(".toast:hover, .toast:focus-within") != null
  );
}

// Starts or stops the toast's clock to match whether it is held now.
function updateToastClock(toast) {
  const clock = toastClocks.get(toast);
  if (!clock) {
    return;
  }
  if (!toast.isConnected) {
    clearTimeout(clock.timer);
    toastObserver.unobserve(toast);
    toastClocks.delete(toast);
  } else if (toastHeld(toast, clock)) {
    if (clock.timer !== null) {
      clearTimeout(clock.timer);
      clock.timer = null;
      clock.remaining -= performance.now() - clock.started;
    }
  } else if (clock.timer === null) {
    clock.started = performance.now();
    clock.timer = setTimeout(() => {
      toast.remove();
      updateToastClock(toast);
    }, Math.max(clock.remaining, 0));
  }
}

function updateToastClocks() {
  toastClocks.forEach((clock, toast) => updateToastClock(toast));
}

const toastObserver = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const clock = toastClocks.get(entry.target);
    if (clock) {
      clock.inView = entry.isIntersecting;
      updateToastClock(entry.target);
    }
  }
});

function watchToasts(region) {
  const seconds = Number(region.dataset.toastSeconds);
  new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      mutation.addedNodes.forEach((node) => {
        if (node instanceof Element && node.matches(".toast")) {
          toastClocks.set(node, { remaining: seconds * 1000, started: 0, timer: null, inView: false });
          toastObserver.observe(node);
        }
      });
      mutation.removedNodes.forEach(updateToastClock);
    }
  }).observe(region, { childList: true });
  // Pointer and focus changes settle (:hover, :focus-within) before the clocks look.
  for (const name of ["mouseover", "mouseout", "focusin", "focusout"]) {
    region.addEventListener(name, () => setTimeout(updateToastClocks));
  }
}

document.addEventListener("visibilitychange", updateToastClocks);

// ------------------------------------------------------------------- notification poll
// base.html renders #notification-poll armed (hx-get, hx-trigger) only while the user has
// a job pending or processing. The server answers 286 when nothing is left to wait for:
// htmx then stops polling, and the poll is marked stopped by dropping those attributes.
// An action taken through htmx (a retry...) after which the page shows a pending or
// processing job arms a stopped poll again, as a fresh element (a stopped one stays
// stopped); if that job is not the user's, the first request, at once, stops it again.
const ACTIVE_JOB = '.badge[data-status="PENDING"], .badge[data-status="PROCESSING"]';

function armNotificationPoll() {
  const poll = document.getElementById("notification-poll");
  if (!poll || poll.hasAttribute("hx-trigger")) {
    return;
  }
  const armed = poll.cloneNode(false);
  armed.setAttribute("hx-get", poll.dataset.pollUrl);
  armed.setAttribute("hx-trigger", poll.dataset.pollTrigger);
  poll.replaceWith(armed);
  htmx.process(armed);
}

// Fired once the answer has been swapped in.
document.addEventListener("htmx:afterRequest", (event) => {
  const { elt, xhr, requestConfig, successful } = event.detail;
  if (elt?.id === "notification-poll") {
    if (xhr.status === 286) {
      elt.removeAttribute("hx-get");
      elt.removeAttribute("hx-trigger");
    }
  } else if (successful && requestConfig?.verb !== "get" && document.querySelector(ACTIVE_JOB)) {
    armNotificationPoll();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const region = document.getElementById("toasts");
  if (region) {
    watchToasts(region);
  }
});

// The search preview describes the form as it was when Preview was pressed. Any change to
// the search afterwards (the job name changes no figure) marks it outdated, "Criteria
// changed — preview again", until the next preview arrives; a change made while a preview
// is on its way marks that answer outdated too.
let searchEdits = 0;
let editsAtPreview = 0;

function markPreviewStale() {
  const preview = document.getElementById("preview");
  if (preview && (preview.classList.contains("has-result") || preview.classList.contains("has-error"))) {
    preview.classList.add("is-stale");
  }
}

function onSearchEdit(event) {
  if (!event.target.closest?.("#search-form") || event.target.name === "name") {
    return;
  }
  searchEdits += 1;
  markPreviewStale();
}

document.addEventListener("input", onSearchEdit);
document.addEventListener("change", onSearchEdit);

document.addEventListener("htmx:beforeRequest", (event) => {
  if (event.detail.elt?.id === "preview-button") {
    editsAtPreview = searchEdits;
  }
});

// Fired once the answer has been swapped in.
document.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.elt?.id === "preview-button" && searchEdits !== editsAtPreview) {
    markPreviewStale();
  }
});
