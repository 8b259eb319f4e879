// The call page's interactions: the waveform (per channel, drawn from the console's peaks), evidence markers placed on it,
// and seeking the <audio> element from a marker, an evidence link or a transcript word. No framework; served by the console.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  function lanePath(peaks, width, height) {
    const mid = height / 2;
    const step = width / Math.max(1, peaks.length);
    let top = "", bottom = "";
    peaks.forEach(function (p, i) {
      top += (i ? "L" : "M") + (i * step).toFixed(1) + " " + (mid - p[1] * mid).toFixed(1) + " ";
    });
    for (let i = peaks.length - 1; i >= 0; i--) {
      bottom += "L" + (i * step).toFixed(1) + " " + (mid - peaks[i][0] * mid).toFixed(1) + " ";
    }
    return top + bottom + "Z";
  }

  function drawWaveform(box, data) {
    const lanes = box.querySelector(".lanes");
    const label = box.dataset.channelLabel || "Channel";
    const names = (box.dataset.channelNames || "").split(",").filter(Boolean);
    (data.channels || []).forEach(function (peaks, index) {
      const caption = document.createElement("div");
      caption.className = "lane-label";
      caption.textContent = label + " " + (index + 1) + (names[index] ? " · " + names[index] : "");
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "lane");
      svg.setAttribute("viewBox", "0 0 1000 80");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("aria-hidden", "true");
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", lanePath(peaks, 1000, 80));
      svg.appendChild(path);
      lanes.appendChild(caption);
      lanes.appendChild(svg);
    });
    box.dataset.loaded = String((data.channels || []).length);
  }

  function placeMarkers(box, duration) {
    if (!(duration > 0)) return;
    box.querySelectorAll(".evidence-marker").forEach(function (marker) {
      const start = parseFloat(marker.dataset.start), end = parseFloat(marker.dataset.end);
      marker.style.left = (100 * start / duration) + "%";
      marker.style.width = "max(6px, " + (100 * Math.max(0, end - start) / duration) + "%)";
    });
  }

  function seek(player, seconds) {
    player.currentTime = seconds;
    const playing = player.play();
    if (playing && playing.catch) playing.catch(function () { /* autoplay refused: the position is set all the same */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const player = document.getElementById("player");
    const box = document.getElementById("waveform");
    if (!player) return;
    document.querySelectorAll(".seek").forEach(function (element) {
      element.addEventListener("click", function () { seek(player, parseFloat(element.dataset.start) || 0); });
    });
    const shown = document.getElementById("player-time");
    let cursor = null;
    if (box) {
      cursor = document.createElement("div");
      cursor.className = "cursor";
      box.appendChild(cursor);
      placeMarkers(box, parseFloat(box.dataset.duration));
      fetch(box.dataset.src, { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.json() : Promise.reject(answer.status); })
        .then(function (data) {
          drawWaveform(box, data);
          if (data.duration_s) { box.dataset.duration = data.duration_s; placeMarkers(box, data.duration_s); }
        })
        .catch(function (status) { box.dataset.loaded = "error " + status; });
    }
    player.addEventListener("timeupdate", function () {
      const duration = parseFloat(box && box.dataset.duration) || player.duration;
      if (shown) shown.textContent = player.currentTime.toFixed(1) + " s";
      if (cursor && duration > 0) cursor.style.left = (100 * player.currentTime / duration) + "%";
    });
  });
}());
