// radar_app's only script besides htmx. It lives in a file because the Content Security
// Policy allows no inline scripts and no eval (which also rules out htmx's hx-on).

// Any button with data-dismiss="<selector>" removes its closest match (toast close buttons).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-dismiss]");
  if (button) {
    button.closest(button.dataset.dismiss)?.remove();
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
