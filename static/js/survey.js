/* Likeness participant pages: response times, preloading, keyboard shortcuts, one submission.
 *
 * Everything here adds to pages that work without it: with no script the forms submit as
 * they are, a sequential match shows both photos side by side and a timed study-phase
 * headshot stays until Continue (both stored as untimed), a name question shows with "(if you
 * said yes)", and rt_ms stays empty.
 *
 * Response time: from the moment the trial's images are decoded and painted (img.decode(),
 * then two animation frames) to the participant's last answer on the page, in ms from
 * performance.now(). An answer given before the images were painted leaves it empty.
 */
(function () {
  "use strict";

  var SUBMIT_DELAY_MS = 120; // long enough to see the chosen button light up
  var POINTER_WINDOW_MS = 1500;

  function now() {
    return window.performance && performance.now ? performance.now() : Date.now();
  }

  function nextFrame() {
    return new Promise(function (resolve) {
      window.requestAnimationFrame(function () { window.requestAnimationFrame(resolve); });
    });
  }

  /* Resolve once every image is decoded and the page has painted with it. */
  function painted(images) {
    return Promise.all(images.map(function (img) {
      if (img.decode) { return img.decode().catch(function () {}); }
      if (img.complete) { return Promise.resolve(); }
      return new Promise(function (resolve) {
        img.addEventListener("load", resolve);
        img.addEventListener("error", resolve);
      });
    })).then(nextFrame);
  }

  /* A form sends once: a double click or a second Enter does not post it twice. */
  function sendOnce(form) {
    var sent = false;
    form.addEventListener("submit", function (event) {
      if (sent) { event.preventDefault(); return; }
      sent = true;
    });
  }

  function preload(form) {
    (form.getAttribute("data-preload") || "").split(" ").forEach(function (url) {
      if (url) { var img = new Image(); img.src = url; }
    });
  }

  function setUpTrial(form) {
    var rtField = form.querySelector("[data-rt]");
    var groups = Array.prototype.slice.call(form.querySelectorAll("[data-question]"));
    var nextButton = form.querySelector("button[type=submit]");
    var shownAt = null;
    var answeredAt = null;
    var lastPointer = -Infinity;
    var byKey = false;
    var pending = false;

    function answered(group) { return group.querySelector("input:checked") !== null; }
    /* A question asked only after some answer ("data-when": name=value) is shown, and needed,
       only once that answer is given. */
    function asked(group) {
      var when = group.getAttribute("data-when");
      if (!when) { return true; }
      var parts = when.split("=");
      var given = form.querySelector('input[name="' + parts[0] + '"]:checked');
      return given !== null && given.value === parts[1];
    }
    function showAsked() {
      groups.forEach(function (g) {
        if (!g.hasAttribute("data-when")) { return; }
        g.hidden = !asked(g);
        if (g.hidden) {
          Array.prototype.forEach.call(g.querySelectorAll("input"), function (i) { i.checked = false; });
        }
      });
    }
    function complete() { return groups.every(function (g) { return !asked(g) || answered(g); }); }
    function enable(on) {
      groups.forEach(function (g) { g.disabled = !on; });
      if (nextButton) { nextButton.disabled = !on; }
    }

    function submitSoon() {
      if (pending || !complete()) { return; }
      pending = true;
      window.setTimeout(function () {
        if (form.requestSubmit) { form.requestSubmit(); }
        else { setRt(); form.submit(); }
      }, SUBMIT_DELAY_MS);
    }

    function setRt() {
      // A page with no question (a study-phase Continue) is answered when it is sent.
      if (answeredAt === null && groups.length === 0) { answeredAt = now(); }
      if (shownAt !== null && answeredAt !== null && answeredAt > shownAt) {
        rtField.value = (answeredAt - shownAt).toFixed(1);
      } else {
        rtField.value = "";
      }
    }

    form.addEventListener("pointerdown", function () { lastPointer = now(); });
    form.addEventListener("change", function (event) {
      if (event.target.type !== "radio") { return; }
      showAsked();
      answeredAt = now();
      // A tap, a click or a shortcut answers; arrowing through a radio group only moves.
      if (byKey || answeredAt - lastPointer < POINTER_WINDOW_MS) { submitSoon(); }
    });
    form.addEventListener("submit", setRt);

    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
      if (nextButton && nextButton.disabled) { return; }
      if (event.key === "Enter" && complete() && event.target.tagName !== "BUTTON" &&
          event.target.tagName !== "A") {
        event.preventDefault();
        if (form.requestSubmit) { form.requestSubmit(); } else { setRt(); form.submit(); }
        return;
      }
      var input = sideTarget(event.key) || shortcutTarget((event.key || "").toLowerCase()) ||
        shortcutTarget(physicalKey(event.code));
      if (!input) { return; }
      event.preventDefault();
      input.checked = true;
      byKey = true;
      input.dispatchEvent(new Event("change", { bubbles: true }));
      byKey = false;
    });

    /* A choice between the left and right photo: the arrow keys mean the photo on that side
       of the screen, whatever the page's writing direction. */
    function sideTarget(key) {
      if (key !== "ArrowLeft" && key !== "ArrowRight") { return null; }
      return form.querySelector('input[data-arrow="' + (key === "ArrowLeft" ? "left" : "right") + '"]');
    }

    /* The letter or digit printed on the key pressed, for keyboards whose layout types another
       script there (Arabic, Chinese input): F and J are where they always are. */
    function physicalKey(code) {
      var match = /^(?:Key([A-Z])|Digit([0-9])|Numpad([0-9]))$/.exec(code || "");
      return match ? (match[1] || match[2] || match[3]).toLowerCase() : "";
    }

    /* The radio a key stands for: f/j in the two-choice question, a digit in the first scale
       still unanswered (or the focused one). */
    function shortcutTarget(key) {
      if (!key || key.length !== 1) { return null; }
      var selector = 'input[data-key="' + key + '"]';
      var candidates = groups.filter(function (g) { return !g.hidden && g.querySelector(selector); });
      if (!candidates.length) { return null; }
      var open = candidates.filter(function (g) { return !answered(g); });
      var focused = candidates.filter(function (g) { return g.contains(document.activeElement); });
      var group = open[0] || focused[0] || candidates[candidates.length - 1];
      return group.querySelector(selector);
    }

    function start() {
      shownAt = now();
      enable(true);
      form.setAttribute("data-shown", ""); // the clock runs: answers now get a response time
      preload(form);
    }

    showAsked();
    var images = Array.prototype.slice.call(form.querySelectorAll("img[data-stimulus]"));
    if (form.hasAttribute("data-study-exposure-ms")) {
      // Study phase with a set time: the headshot (and its label) for the block's exposure_ms,
      // timed on animation frames like a sequential match, then the question or Continue.
      runSequence(form, images, enable, start);
    } else if (form.hasAttribute("data-sequential")) {
      runSequence(form, images, enable, start);
    } else {
      painted(images).then(start);
    }
  }

  /* Frame timing of a sequential match (fixation cross, headshot, mask, blank, then the probe
   * until the answer; a phase of 0 ms is left out) and of a timed study-phase headshot (the
   * headshot, then the question or Continue without it).
   *
   * Every change of phase is made in an animation-frame callback, and a phase's duration is the
   * difference between the timestamps of the frames that showed and replaced it: both changes
   * reach the screen one frame later alike, so the difference is what the display showed. A
   * phase ends at the first frame at which its requested time less half a frame has passed, so
   * it lasts the whole number of frames nearest the request. The refresh rate is the median
   * interval of REFRESH_FRAMES frames before the first phase, once both photos are decoded.
   * What was achieved goes with the answer in the hidden timing fields; without the script
   * they stay empty and the trial is stored as untimed.
   */
  var REFRESH_FRAMES = 20;

  function frameStamps(count) {
    return new Promise(function (resolve) {
      var stamps = [];
      function tick(t) {
        stamps.push(t);
        if (stamps.length < count) { window.requestAnimationFrame(tick); } else { resolve(stamps); }
      }
      window.requestAnimationFrame(tick);
    });
  }

  function medianInterval(stamps) {
    var gaps = [];
    for (var i = 1; i < stamps.length; i += 1) { gaps.push(stamps[i] - stamps[i - 1]); }
    gaps.sort(function (a, b) { return a - b; });
    var mid = Math.floor(gaps.length / 2);
    return gaps.length % 2 ? gaps[mid] : (gaps[mid - 1] + gaps[mid]) / 2;
  }

  function runSequence(form, images, enable, start) {
    var part = function (role) { return form.querySelector(".stimulus." + role); };
    var ms = function (name) { return Math.max(0, parseInt(form.getAttribute(name), 10) || 0); };
    var field = function (name, value) {
      var input = form.querySelector('[data-timing="' + name + '"]');
      if (input) { input.value = value; }
    };
    var study = form.hasAttribute("data-study-exposure-ms");
    var headshot = study ? part("single") : part("headshot");
    var probe = study ? null : part("probe");
    // A study-phase headshot goes after its exposure and the question (or Continue) waits;
    // a sequential match ends on the probe photo. Only a match measures the blank before it.
    var phases = study ? [
      { name: "exposure", ms: ms("data-study-exposure-ms") || 3000, el: headshot },
      { name: "answer", ms: 0, el: null }
    ] : [
      { name: "fixation", ms: ms("data-fixation-ms"), el: part("fixation") },
      { name: "exposure", ms: ms("data-exposure-ms") || 1500, el: headshot },
      { name: "mask", ms: ms("data-mask-ms"), el: part("mask") },
      { name: "isi", ms: ms("data-isi-ms"), el: null },
      { name: "answer", ms: 0, el: probe }
    ].filter(function (p) { return p.ms > 0 || p.name === "answer"; });
    if (!study) { headshot.hidden = true; probe.hidden = true; }
    enable(false);
    painted(images).then(function () { return frameStamps(REFRESH_FRAMES); }).then(function (stamps) {
      var frameMs = medianInterval(stamps);
      var index = -1;
      var onset = 0;
      var achieved = { fixation: null, exposure: null, mask: null, isi: study ? null : 0 };
      function tick(t) {
        var phase = phases[index];
        if (phase && t - onset < phase.ms - frameMs / 2) { window.requestAnimationFrame(tick); return; }
        if (phase) {
          achieved[phase.name] = t - onset;
          if (phase.el) { phase.el.hidden = true; }
          if (phase.name === "exposure") { form.removeAttribute("data-exposing"); }
        }
        index += 1;
        phase = phases[index];
        onset = t;
        if (phase.el) { phase.el.hidden = false; }
        if (phase.name === "exposure") { form.setAttribute("data-exposing", ""); }
        if (phase.name !== "answer") { window.requestAnimationFrame(tick); return; }
        if (probe) { probe.classList.add("revealed"); } else { form.setAttribute("data-exposed", ""); }
        field("timing", "frames");
        field("refresh_hz", (1000 / frameMs).toFixed(2));
        ["fixation", "exposure", "mask", "isi"].forEach(function (name) {
          field(name + "_ms_achieved", achieved[name] === null ? "" : achieved[name].toFixed(1));
        });
        window.requestAnimationFrame(start); // the probe is on screen (or the headshot gone)
      }
      window.requestAnimationFrame(tick);
    });
  }

  function setUpDebrief() {
    var copy = document.querySelector("[data-copy]");
    if (copy && navigator.clipboard) {
      copy.hidden = false;
      copy.addEventListener("click", function () {
        var code = document.querySelector(copy.getAttribute("data-copy")).textContent.trim();
        navigator.clipboard.writeText(code).then(function () {
          copy.textContent = copy.getAttribute("data-copied");
        });
      });
    }
    // The page's <meta http-equiv="refresh"> does the leaving (also without script); this
    // only counts the seconds down in the note that announces it.
    var back = document.querySelector("[data-redirect-after]");
    var note = document.querySelector("[data-redirect-note]");
    if (back && note) {
      var left = parseInt(back.getAttribute("data-redirect-after"), 10);
      // The note for each number of seconds left, in the page's language (from the server).
      var texts = JSON.parse(note.getAttribute("data-countdown") || "[]");
      var tick = function () {
        if (texts.length) { note.textContent = texts[Math.max(0, Math.min(left, texts.length - 1))]; }
        if (left <= 0) { return; }
        left -= 1;
        window.setTimeout(tick, 1000);
      };
      tick();
    }
  }

  /* The distractor's seconds left count down (the server decides when it ends; the page
     reloads itself then, also without script), and a return time shows in local time. */
  function setUpDelay() {
    var counter = document.querySelector("[data-seconds-left]");
    if (counter) {
      var ends = now() + 1000 * parseInt(counter.getAttribute("data-seconds-left"), 10);
      // The line for each number of seconds left, in the page's language (from the server).
      var texts = JSON.parse(counter.getAttribute("data-countdown-texts") || "[]");
      var update = function () {
        var left = Math.max(0, Math.ceil((ends - now()) / 1000));
        counter.setAttribute("data-left", String(left));
        if (texts.length) { counter.textContent = texts[Math.min(left, texts.length - 1)]; }
        if (left > 0) { window.setTimeout(update, 250); }
      };
      update();
    }
    // A return time, written by the server in UTC, in the browser's own time and the page's
    // language; the words around it ("%(time)s, your local time") come from the page.
    var language = document.documentElement.getAttribute("lang") || undefined;
    Array.prototype.forEach.call(document.querySelectorAll("time[data-local]"), function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime()) || !when.toLocaleString) { return; }
      var shown;
      try {
        shown = when.toLocaleString(language, {
          weekday: "long", day: "numeric", month: "long", year: "numeric",
          hour: "2-digit", minute: "2-digit", numberingSystem: "latn"
        });
      } catch (error) {
        return; // a browser without this language keeps the server's UTC time
      }
      el.textContent = el.getAttribute("data-local").replace("%(time)s", shown);
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-once]"), sendOnce);
    setUpDelay();
    var trial = document.querySelector("form[data-trial]");
    if (trial) { setUpTrial(trial); }
    setUpDebrief();
  }

  // A trial page restored from the back-forward cache would show an answered question.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.querySelector("form[data-trial]")) { window.location.reload(); }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
