// Shows every <time> in the viewer's zone; the UTC it was rendered in
// stays on hover. Without script the page reads in UTC.
document.querySelectorAll("time[datetime]").forEach(function (el) {
  var d = new Date(el.getAttribute("datetime"));
  if (isNaN(d)) return;
  el.title = el.textContent;
  el.textContent = d.toLocaleString(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
});
