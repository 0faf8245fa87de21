// Live alarms: the overview and alarms pages list open alarms in #live-alarms; every alarm
// event from /ui/events updates or adds its row without a reload.
(function () {
  var table = document.getElementById('live-alarms');
  if (!table || !window.EventSource) return;
  var es = new EventSource('/ui/events');
  es.onopen = function () { document.body.dataset.live = '1'; };
  es.addEventListener('alarm', function (ev) {
    var a = JSON.parse(ev.data);
    var row = document.getElementById('alarm-' + a.id);
    if (!row) {
      row = document.createElement('tr');
      row.id = 'alarm-' + a.id;
      for (var i = 0; i < 6; i++) row.appendChild(document.createElement('td'));
      table.tBodies[0].insertBefore(row, table.tBodies[0].firstChild);
    }
    var cells = [a.id, a.kind, a.subject, a.message, a.state, a.last_at];
    for (var j = 0; j < cells.length; j++) row.cells[j].textContent = String(cells[j]);
    row.className = 'live ' + a.state;
  });
})();
