module.exports = function (context, params) {
  // secrets named by the function (--secret) and by the run are merged into context
  const password = context.secrets.password;
  if (password === undefined) {
    return { message: "I know nothing" };
  }
  return { message: "The password is " + password };
};
