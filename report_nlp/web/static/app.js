// Copy and download of the JSON result; no network calls, no inline script (CSP).
(function () {
  var pre = document.getElementById("result-json");
  if (!pre) return;
  var status = document.getElementById("copy-status");
  document.getElementById("copy-json").addEventListener("click", function () {
    var text = pre.textContent;
    if (navigator.clipboard) {
      navigator.clipboard.writeText(text).then(function () { status.textContent = "Copied."; },
        function () { status.textContent = "Copy failed: select the text below."; });
    } else { status.textContent = "Select the text below to copy."; }
  });
  document.getElementById("download-json").addEventListener("click", function () {
    var blob = new Blob([pre.textContent], { type: "application/json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "report_nlp_result.json";
    document.body.appendChild(a); a.click(); a.remove();
  });
})();
