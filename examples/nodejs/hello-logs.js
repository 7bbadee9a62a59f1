module.exports = async function (context, params) {
  console.log("this goes to the run's stdout log");
  console.error("and this to its stderr log");
  // a handler may return a Promise
  return await Promise.resolve({ logged: true });
};
