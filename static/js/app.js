// radar_app's only script besides htmx. It lives in a file because the Content Security
// Policy allows no inline scripts and no eval (which also rules out htmx's hx-on).

// Any button with data-dismiss="<selector>" removes its closest match (toast close buttons).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-dismiss]");
  if (button) {
    button.closest(button.dataset.dismiss)?.remove();
  }
});
