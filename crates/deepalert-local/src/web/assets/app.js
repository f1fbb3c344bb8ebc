// deepalert's only script: local times, and the report list's auto-refresh. The pages work
// without it.
"use strict";
(function () {
  function ago(date) {
    var s = Math.round((Date.now() - date.getTime()) / 1000);
    if (s < 60) return s <= 1 ? "just now" : s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (isNaN(d)) return;
    t.title = d.toLocaleString();
    t.textContent = t.textContent + " (" + ago(d) + ")";
  });

  var box = document.getElementById("auto-refresh");
  if (box) {
    box.checked = localStorage.getItem("deepalert.autoRefresh") !== "off";
    box.addEventListener("change", function () {
      localStorage.setItem("deepalert.autoRefresh", box.checked ? "on" : "off");
    });
    setInterval(function () {
      var typing = document.activeElement && /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName)
        && document.activeElement !== box;
      if (box.checked && !document.hidden && !typing) location.reload();
    }, 15000);
  }
  document.body.setAttribute("data-js", "ready");
})();
