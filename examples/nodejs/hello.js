module.exports = function (context, params) {
  const name = params.name || "Noone";
  const place = params.place || "Nowhere";
  return { myField: "Hello, " + name + " from " + place };
};
